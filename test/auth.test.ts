/**
 * Every supported way to authenticate, against servers configured that way: NATS user/password,
 * token and nkey, NATS TLS; Redis ACL user and TLS. Secrets must never show up in logs or status.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createAccount,
  createOperator,
  createUser as createJwtUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
} from '@nats-io/jwt';
import { createUser } from '@nats-io/nkeys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnreachableError, parseAgentConfig } from '@georep/core';
import { connectNats } from '@georep/agent';
import {
  ManagedProcess,
  fetchAgentHealth,
  getFreePort,
  makeTestCertificates,
  startNats,
  startRedis,
  tempDir,
  waitFor,
  type NatsServer,
  type RedisServer,
} from '@georep/testkit';
import { GEOREP_BIN, georep } from './helpers.js';

const NATS_PASSWORD = 'nats-pw-7f3a9c';
const REDIS_PASSWORD = 'redis-pw-c41d0e';
const DEFAULT_PASSWORD = 'default-pw-99ab';

describe('auth and TLS end to end', () => {
  const dir = tempDir('auth');
  const certs = makeTestCertificates(join(dir, 'certs'));
  let nats: NatsServer;
  let redis: RedisServer;
  let agent: ManagedProcess;
  let httpPort: number;

  beforeAll(async () => {
    nats = await startNats({
      dir: join(dir, 'nats'),
      serverName: 'secure',
      auth: { kind: 'user', user: 'georep', password: NATS_PASSWORD },
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
    });
    redis = await startRedis({
      dir: join(dir, 'redis'),
      password: DEFAULT_PASSWORD,
      user: { name: 'georep', password: REDIS_PASSWORD },
      tls: { certFile: certs.serverCertFile, keyFile: certs.serverKeyFile, caFile: certs.caFile },
    });
    const redisPasswordFile = join(dir, 'redis-password');
    writeFileSync(redisPasswordFile, `${REDIS_PASSWORD}\n`);
    httpPort = await getFreePort();
    const configFile = join(dir, 'agent.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        group: 'secure',
        region: 'vault',
        nats: { servers: [nats.url], user: 'georep', tls: { caFile: certs.caFile } },
        redis: {
          nodes: [{ id: 'vault-1', host: redis.host, port: redis.port }],
          username: 'georep',
          passwordFile: redisPasswordFile,
          tls: { caFile: certs.caFile },
        },
        http: { host: '127.0.0.1', port: httpPort },
        log: { level: 'debug' },
      }),
    );
    agent = await ManagedProcess.start({
      name: 'secure agent',
      command: process.execPath,
      args: [GEOREP_BIN, 'agent', '--config', configFile],
      env: { ...process.env, GEOREP_NATS_PASSWORD: NATS_PASSWORD },
      logFile: join(dir, 'agent.log'),
      ready: async () => (await fetchAgentHealth('127.0.0.1', httpPort))?.ok === true,
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await Promise.all([nats?.stop(), redis?.stop()]);
  });

  it('auth - an agent with NATS user/password over TLS and a Redis ACL user over TLS is healthy', async () => {
    const health = await fetchAgentHealth('127.0.0.1', httpPort);
    expect(health).toMatchObject({ ok: true, region: 'vault', regions: { vault: 'up' } });
  });

  it('auth - georep status works with the same credentials from the environment', async () => {
    const run = await georep(
      ['--nats', nats.url, '--nats-user', 'georep', '--nats-ca', certs.caFile, 'status', '--json'],
      {
        env: { GEOREP_NATS_PASSWORD: NATS_PASSWORD },
      },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as {
      group: string;
      regions: { name: string; nodes: { up: boolean }[] }[];
    };
    expect(report.group).toBe('secure');
    expect(report.regions[0]!.nodes[0]!.up).toBe(true);
    expect(run.stdout).not.toContain(NATS_PASSWORD);
    expect(run.stdout).not.toContain(REDIS_PASSWORD);
  });

  it('auth - wrong NATS credentials exit 4 with nats.auth-failed', async () => {
    const run = await georep(
      ['--nats', nats.url, '--nats-user', 'georep', '--nats-ca', certs.caFile, 'status'],
      {
        env: { GEOREP_NATS_PASSWORD: 'wrong' },
      },
    );
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('[nats.auth-failed]');
  });

  it('auth - no secret appears in the agent log, even at debug level', async () => {
    await waitFor(
      () => readFileSync(join(dir, 'agent.log'), 'utf8'),
      (log) => log.includes('connected to NATS'),
    );
    const log = readFileSync(join(dir, 'agent.log'), 'utf8');
    for (const secret of [NATS_PASSWORD, REDIS_PASSWORD, DEFAULT_PASSWORD])
      expect(log).not.toContain(secret);
  });
});

describe('NATS token and nkey authentication', () => {
  const natsConfig = (servers: string, extra: Record<string, unknown>) =>
    parseAgentConfig({
      group: 'g',
      region: 'r',
      nats: { servers: [servers], ...extra },
      redis: { nodes: [{ host: 'h', port: 1 }] },
    }).nats;

  it('auth - a token from a file connects; a wrong token is nats.auth-failed', async () => {
    await using server = await startNats({
      dir: tempDir('token'),
      serverName: 't',
      auth: { kind: 'token', token: 'tok-123' },
    });
    const tokenFile = join(tempDir('token-file'), 'token');
    writeFileSync(tokenFile, 'tok-123\n');
    const nc = await connectNats(natsConfig(server.url, { tokenFile }), { name: 'test' });
    await nc.close();
    const err = await connectNats(natsConfig(server.url, { token: 'nope' }), {
      name: 'test',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as UnreachableError).code).toBe('nats.auth-failed');
  });

  it('auth - an nkey seed file connects to a server that knows the public key', async () => {
    const user = createUser();
    const seedFile = join(tempDir('nkey'), 'user.nk');
    writeFileSync(seedFile, new TextDecoder().decode(user.getSeed()));
    await using server = await startNats({
      dir: tempDir('nkey-srv'),
      serverName: 'n',
      auth: { kind: 'nkey', publicKey: user.getPublicKey() },
    });
    const nc = await connectNats(natsConfig(server.url, { nkeySeedFile: seedFile }), {
      name: 'test',
    });
    expect(nc.isClosed()).toBe(false);
    await nc.close();
  });

  it('auth - a .creds file (JWT + seed) connects to an operator-mode server, for the agent and the CLI', async () => {
    // A trusted operator, an account with no limits, and a user of that account.
    const operator = createOperator();
    const account = createAccount();
    const user = createJwtUser();
    const unlimited = {
      conn: -1,
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      leaf: -1,
    };
    const operatorJwt = await encodeOperator('georep-test', operator);
    const accountJwt = await encodeAccount(
      'georep',
      account,
      { limits: unlimited },
      { signer: operator },
    );
    const userJwt = await encodeUser('agent', user, account, { subs: -1, data: -1, payload: -1 });
    const credsFile = join(tempDir('creds'), 'agent.creds');
    writeFileSync(credsFile, fmtCreds(userJwt, user));
    await using server = await startNats({
      dir: tempDir('creds-srv'),
      serverName: 'c',
      jetstream: false,
      extraConfig: [
        `operator: ${operatorJwt}`,
        'resolver: MEMORY',
        `resolver_preload: { ${account.getPublicKey()}: ${accountJwt} }`,
      ],
    });
    const nc = await connectNats(natsConfig(server.url, { credsFile }), { name: 'test' });
    await nc.close();
    const anonymous = await connectNats(natsConfig(server.url, {}), { name: 'test' }).catch(
      (e: unknown) => e,
    );
    expect((anonymous as UnreachableError).code).toBe('nats.auth-failed');
    // The CLI gets as far as asking for agents: authenticated, and none runs on this server.
    const run = await georep([
      '--nats',
      server.url,
      '--nats-creds',
      credsFile,
      '--group',
      'g',
      'status',
    ]);
    expect(run.code).toBe(4);
    expect(run.stderr).toContain('[agent.unreachable]');
  });
});
