/**
 * Launches a real redis-server on loopback: primary or replica, optional ACL user, password and
 * TLS, data in its own directory. The config file stays in the directory so the same node can be
 * started again with the same port and data (an outage and a recovery).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary } from './binaries.js';
import { getFreePort } from './ports.js';
import { ManagedProcess } from './process.js';
import { redisPing, type ProbeTarget } from './resp-probe.js';

/** TLS files for a server; with TLS the node listens on TLS only. */
export interface ServerTls {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Require client certificates (default false). */
  verifyClients?: boolean;
}

/** Options of {@link startRedis}. */
export interface RedisServerOptions {
  /** Directory for the config, data and log; created if missing. */
  dir: string;
  host?: string;
  /** Defaults to a free port. */
  port?: number;
  /** Make this node a replica of that primary. */
  replicaOf?: { host: string; port: number };
  /** `requirepass` (and `masterauth` for replicas). */
  password?: string;
  /** An ACL user with all permissions; `default` stays as configured by `password`. */
  user?: { name: string; password: string };
  tls?: ServerTls;
  /** Append-only file on (default false); `georep dev` turns it on so revived nodes keep data. */
  appendonly?: boolean;
  /** More `redis.conf` lines. */
  extraConfig?: string[];
  detached?: boolean;
  /** Name in messages. */
  name?: string;
}

/** A running redis-server. `await using` stops it. */
export class RedisServer implements AsyncDisposable {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly configFile: string;
  readonly options: RedisServerOptions;
  #process: ManagedProcess;

  private constructor(
    options: RedisServerOptions,
    port: number,
    configFile: string,
    proc: ManagedProcess,
  ) {
    this.options = options;
    this.host = options.host ?? '127.0.0.1';
    this.port = port;
    this.dir = options.dir;
    this.configFile = configFile;
    this.#process = proc;
  }

  /** Writes the config and starts the server; resolves once it answers PING. */
  static async start(options: RedisServerOptions): Promise<RedisServer> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? (await getFreePort(host));
    mkdirSync(options.dir, { recursive: true });
    const configFile = join(options.dir, 'redis.conf');
    writeFileSync(configFile, redisConfig(options, host, port));
    const proc = await launch(options, host, port, configFile);
    return new RedisServer(options, port, configFile, proc);
  }

  /** pid of the current process. */
  get pid(): number {
    return this.#process.pid;
  }

  get running(): boolean {
    return this.#process.running;
  }

  /** `redis://` URL of the node (credentials not included). */
  get url(): string {
    return `${this.options.tls === undefined ? 'redis' : 'rediss'}://${this.host}:${this.port}`;
  }

  /** Probe target for {@link redisPing}. */
  get probe(): ProbeTarget {
    return probeTarget(this.options, this.host, this.port);
  }

  /** Graceful shutdown (SIGTERM; Redis saves if persistence is on). */
  async stop(): Promise<void> {
    await this.#process.stop();
  }

  /** SIGKILL: the node disappears as in a crash. */
  async kill(): Promise<void> {
    await this.#process.kill();
  }

  /** Starts the node again with the same config, port and data. */
  async restart(): Promise<void> {
    if (this.#process.running) await this.#process.stop();
    this.#process = await launch(this.options, this.host, this.port, this.configFile);
  }

  logTail(): string {
    return this.#process.logTail();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** Starts a redis-server; see {@link RedisServerOptions}. */
export async function startRedis(options: RedisServerOptions): Promise<RedisServer> {
  return RedisServer.start(options);
}

function probeTarget(options: RedisServerOptions, host: string, port: number): ProbeTarget {
  return {
    host,
    port,
    ...(options.user !== undefined
      ? { username: options.user.name, password: options.user.password }
      : options.password !== undefined
        ? { password: options.password }
        : {}),
    ...(options.tls === undefined
      ? {}
      : {
          tls: {
            caFile: options.tls.caFile,
            certFile: options.tls.certFile,
            keyFile: options.tls.keyFile,
          },
        }),
  };
}

async function launch(
  options: RedisServerOptions,
  host: string,
  port: number,
  configFile: string,
): Promise<ManagedProcess> {
  const target = probeTarget(options, host, port);
  return ManagedProcess.start({
    name: options.name ?? `redis-server ${host}:${port}`,
    command: findBinary('redis-server'),
    args: [configFile],
    cwd: options.dir,
    logFile: join(options.dir, 'redis.log'),
    ready: () => redisPing(target),
    detached: options.detached ?? false,
  });
}

/** The redis.conf text for `options`. Exported for docs and docker-compose generation. */
export function redisConfig(options: RedisServerOptions, host: string, port: number): string {
  const lines = [
    `bind ${host}`,
    'protected-mode no',
    `dir ${options.dir}`,
    'daemonize no',
    `pidfile ${join(options.dir, 'redis.pid')}`,
    'save ""',
    `appendonly ${options.appendonly === true ? 'yes' : 'no'}`,
    'repl-diskless-sync-delay 0',
  ];
  if (options.tls === undefined) {
    lines.push(`port ${port}`);
  } else {
    lines.push(
      'port 0',
      `tls-port ${port}`,
      `tls-cert-file ${options.tls.certFile}`,
      `tls-key-file ${options.tls.keyFile}`,
      `tls-ca-cert-file ${options.tls.caFile}`,
      `tls-auth-clients ${options.tls.verifyClients === true ? 'yes' : 'no'}`,
      'tls-replication yes',
    );
  }
  if (options.password !== undefined) {
    lines.push(`requirepass "${options.password}"`, `masterauth "${options.password}"`);
  }
  if (options.user !== undefined) {
    lines.push(`user ${options.user.name} on >${options.user.password} ~* &* +@all`);
    if (options.replicaOf !== undefined) {
      lines.push(`masteruser ${options.user.name}`, `masterauth "${options.user.password}"`);
    }
  }
  if (options.replicaOf !== undefined) {
    lines.push(`replicaof ${options.replicaOf.host} ${options.replicaOf.port}`);
  }
  lines.push(...(options.extraConfig ?? []));
  return `${lines.join('\n')}\n`;
}
