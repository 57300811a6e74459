/**
 * Launches a real nats-server on loopback with JetStream, optionally joined to other regions by
 * gateways, with user/password, token or nkey auth and TLS. Each region's server is a one-node
 * cluster routed to itself: JetStream needs a named cluster when gateways are configured
 * (verified with nats-server 2.9.10).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { getFreePort } from './ports.js';
import { ManagedProcess } from './process.js';
import type { ServerTls } from './redis-server.js';

/** Client authentication of a nats-server. */
export type NatsAuth =
  | { kind: 'user'; user: string; password: string }
  | { kind: 'token'; token: string }
  | { kind: 'nkey'; publicKey: string };

/** Options of {@link startNats}. */
export interface NatsServerOptions {
  dir: string;
  /** Unique per server; also the cluster and gateway name (the region). */
  serverName: string;
  host?: string;
  port?: number;
  monitorPort?: number;
  jetstream?: boolean;
  /** Cluster port of the self-route; required with `gateway` and JetStream. */
  clusterPort?: number;
  gateway?: { port: number; remotes: { name: string; port: number }[] };
  auth?: NatsAuth;
  tls?: ServerTls;
  /** More config lines (e.g. operator-mode JWT settings). */
  extraConfig?: string[];
  detached?: boolean;
}

/** A running nats-server. `await using` stops it. */
export class NatsServer implements AsyncDisposable {
  readonly host: string;
  readonly port: number;
  readonly monitorPort: number;
  readonly configFile: string;
  readonly options: NatsServerOptions;
  readonly #clusterPort: number | undefined;
  #process: ManagedProcess;

  private constructor(
    options: NatsServerOptions,
    port: number,
    monitorPort: number,
    configFile: string,
    proc: ManagedProcess,
    clusterPort: number | undefined,
  ) {
    this.options = options;
    this.host = options.host ?? '127.0.0.1';
    this.port = port;
    this.monitorPort = monitorPort;
    this.configFile = configFile;
    this.#process = proc;
    this.#clusterPort = clusterPort;
  }

  static async start(options: NatsServerOptions): Promise<NatsServer> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? (await getFreePort(host));
    const monitorPort = options.monitorPort ?? (await getFreePort(host));
    const clusterPort =
      options.clusterPort ??
      (options.gateway !== undefined && options.jetstream !== false
        ? await getFreePort(host)
        : undefined);
    mkdirSync(options.dir, { recursive: true });
    const configFile = join(options.dir, 'nats.conf');
    writeFileSync(configFile, natsConfig({ ...options, clusterPort }, host, port, monitorPort));
    const proc = await launch(options, host, monitorPort, configFile);
    return new NatsServer(options, port, monitorPort, configFile, proc, clusterPort);
  }

  get pid(): number {
    return this.#process.pid;
  }

  get running(): boolean {
    return this.#process.running;
  }

  /** Client URL (`tls://` when TLS is on). */
  get url(): string {
    return `${this.options.tls === undefined ? 'nats' : 'tls'}://${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    await this.#process.stop();
  }

  async kill(): Promise<void> {
    await this.#process.kill();
  }

  /**
   * Cuts (`false`) or restores (`true`) every gateway link of this server: it restarts with or
   * without its gateway block, on the same ports and data. Its own clients reconnect; other
   * regions cannot reach it until it is restored (a partition of this region).
   */
  async setGateways(enabled: boolean): Promise<void> {
    const { gateway: _gateway, ...rest } = this.options;
    const options = enabled ? this.options : rest;
    writeFileSync(
      this.configFile,
      natsConfig(
        { ...options, clusterPort: this.#clusterPort },
        this.host,
        this.port,
        this.monitorPort,
      ),
    );
    await this.restart();
  }

  /** Starts the server again with the same config and JetStream data. */
  async restart(): Promise<void> {
    if (this.#process.running) await this.#process.stop();
    this.#process = await launch(this.options, this.host, this.monitorPort, this.configFile);
  }

  logTail(): string {
    return this.#process.logTail();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts a nats-server; see {@link NatsServerOptions}. */
export async function startNats(options: NatsServerOptions): Promise<NatsServer> {
  return NatsServer.start(options);
}

/** GETs a monitoring path of the server; true on HTTP 200. */
async function monitorOk(
  host: string,
  monitorPort: number,
  path: string,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port: monitorPort, path, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Resolves true when the server serves clients and JetStream is enabled. It does not wait for a
 * JetStream meta leader: with gateways the meta group spans every region, so a region alone
 * (the others down) never has one, and its server must still count as up.
 */
export async function natsHealthy(
  host: string,
  monitorPort: number,
  timeoutMs = 1000,
): Promise<boolean> {
  return monitorOk(host, monitorPort, '/healthz?js-enabled-only=true', timeoutMs);
}

/**
 * Resolves true once JetStream is usable: the server has contact with a JetStream meta leader
 * (with gateways the meta group spans every region, so this needs a majority of them up).
 */
export async function natsJetStreamReady(
  host: string,
  monitorPort: number,
  timeoutMs = 1000,
): Promise<boolean> {
  return monitorOk(host, monitorPort, '/healthz', timeoutMs);
}

async function launch(
  options: NatsServerOptions,
  host: string,
  monitorPort: number,
  configFile: string,
): Promise<ManagedProcess> {
  return ManagedProcess.start({
    name: `nats-server ${options.serverName}`,
    command: findBinary('nats-server'),
    args: ['-c', configFile],
    cwd: options.dir,
    logFile: join(options.dir, 'nats.log'),
    ready: () => natsHealthy(host, monitorPort),
    detached: options.detached ?? false,
  });
}

const q = (s: string) => JSON.stringify(s);

/** The nats-server config text for `options`. */
export function natsConfig(
  options: NatsServerOptions,
  host: string,
  port: number,
  monitorPort: number,
): string {
  const lines = [
    `server_name: ${q(options.serverName)}`,
    `listen: ${q(`${host}:${port}`)}`,
    `http: ${q(`${host}:${monitorPort}`)}`,
    `pid_file: ${q(join(options.dir, 'nats.pid'))}`,
  ];
  if (options.jetstream !== false) {
    lines.push(
      `jetstream { store_dir: ${q(join(options.dir, 'jetstream'))}, max_memory_store: 256MB, max_file_store: 2GB }`,
    );
  }
  if (options.clusterPort !== undefined) {
    const route = `nats://${host}:${options.clusterPort}`;
    lines.push(
      `cluster { name: ${q(options.serverName)}, listen: ${q(`${host}:${options.clusterPort}`)}, routes: [${q(route)}] }`,
    );
  }
  if (options.gateway !== undefined) {
    const remotes = options.gateway.remotes
      .map((r) => `{ name: ${q(r.name)}, urls: [${q(`nats://${host}:${r.port}`)}] }`)
      .join(', ');
    lines.push(
      `gateway { name: ${q(options.serverName)}, listen: ${q(`${host}:${options.gateway.port}`)}, gateways: [${remotes}] }`,
    );
  }
  const auth = options.auth;
  if (auth?.kind === 'user') {
    lines.push(`authorization { user: ${q(auth.user)}, password: ${q(auth.password)} }`);
  } else if (auth?.kind === 'token') {
    lines.push(`authorization { token: ${q(auth.token)} }`);
  } else if (auth?.kind === 'nkey') {
    lines.push(`authorization { users: [ { nkey: ${q(auth.publicKey)} } ] }`);
  }
  if (options.tls !== undefined) {
    lines.push(
      `tls { cert_file: ${q(options.tls.certFile)}, key_file: ${q(options.tls.keyFile)}, ca_file: ${q(options.tls.caFile)}, verify: ${options.tls.verifyClients === true} }`,
    );
  }
  lines.push(...(options.extraConfig ?? []));
  return `${lines.join('\n')}\n`;
}
