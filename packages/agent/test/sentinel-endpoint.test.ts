import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  SentinelEndpoint,
  sentinelRunId,
  type SentinelEndpointOptions,
  type SentinelMaster,
  type SentinelPeer,
} from '@georep/agent';
import { silentLogger } from '@georep/core';
import { findBinary, startRedis, tempDir, waitFor, type RedisServer } from '@georep/testkit';

const run = promisify(execFile);
const HOST = '127.0.0.1';

/** What a raw connection got back, and whether the endpoint closed it. */
interface Exchange {
  text: string;
  closed: boolean;
}

/**
 * Writes `chunks` on a fresh connection, a little apart so they arrive as separate reads, and
 * collects the reply until `until(text)` holds or the endpoint closes the connection.
 */
async function exchange(
  port: number,
  chunks: (string | Buffer)[],
  until: (text: string) => boolean = () => false,
): Promise<Exchange> {
  const socket = connect(port, HOST);
  socket.setNoDelay(true);
  let text = '';
  const result = new Promise<Exchange>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply within 5 s; got ${JSON.stringify(text)}`));
    }, 5000);
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (until(text)) finish(false);
    });
    socket.on('close', () => finish(true));
    // A reset while the test is still writing counts as "closed"; the reply is in `text`.
    socket.on('error', () => undefined);
  });
  await once(socket, 'connect');
  for (const [i, chunk] of chunks.entries()) {
    if (i > 0) await delay(2);
    if (!socket.destroyed) socket.write(chunk);
  }
  return result;
}

/** Sentinel's flat field/value replies as an object, keeping the field order. */
function pack(flat: unknown): Record<string, string> {
  const fields = flat as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

const MASTER_FIELDS = [
  'name',
  'ip',
  'port',
  'runid',
  'flags',
  'link-pending-commands',
  'link-refcount',
  'last-ping-sent',
  'last-ok-ping-reply',
  'last-ping-reply',
  'down-after-milliseconds',
  'info-refresh',
  'role-reported',
  'role-reported-time',
  'config-epoch',
  'num-slaves',
  'num-other-sentinels',
  'quorum',
  'failover-timeout',
  'parallel-syncs',
];

const REPLICA_FIELDS = [
  'name',
  'ip',
  'port',
  'runid',
  'flags',
  'link-pending-commands',
  'link-refcount',
  'last-ping-sent',
  'last-ok-ping-reply',
  'last-ping-reply',
  'down-after-milliseconds',
  'info-refresh',
  'role-reported',
  'role-reported-time',
  'master-link-down-time',
  'master-link-status',
  'master-host',
  'master-port',
  'slave-priority',
  'slave-repl-offset',
  'replica-announced',
];

const SENTINEL_FIELDS = [
  'name',
  'ip',
  'port',
  'runid',
  'flags',
  'link-pending-commands',
  'link-refcount',
  'last-ping-sent',
  'last-ok-ping-reply',
  'last-ping-reply',
  'down-after-milliseconds',
  'last-hello-message',
  'voted-leader',
  'voted-leader-epoch',
];

describe('sentinel endpoint', () => {
  let serverA: RedisServer;
  let serverB: RedisServer;
  let adminA: Redis;
  let adminB: Redis;
  /** What the view answers; tests change it to move a name. */
  let masters: SentinelMaster[];
  let peers: SentinelPeer[];
  let endpoint: SentinelEndpoint;
  const clients: Redis[] = [];
  const endpoints: SentinelEndpoint[] = [];

  const view = {
    myId: sentinelRunId('sentinel-endpoint-test'),
    masters: () => masters,
    sentinels: () => peers,
  };
  const at = (server: RedisServer): SentinelMaster => ({
    name: 'eu-west',
    primary: { host: server.host, port: server.port },
    replicas: [],
  });
  const start = async (extra: Partial<SentinelEndpointOptions> = {}) => {
    const started = await SentinelEndpoint.start({
      host: HOST,
      port: 0,
      view,
      logger: silentLogger,
      ...extra,
    });
    endpoints.push(started);
    return started;
  };
  const client = (options: RedisOptions) => {
    const made = new Redis({ maxRetriesPerRequest: 3, ...options });
    made.on('error', () => undefined); // connection drops are part of these tests
    clients.push(made);
    return made;
  };
  const sentinelClient = (options: RedisOptions = {}) =>
    client({ sentinels: [{ host: HOST, port: endpoint.port }], name: 'eu-west', ...options });

  beforeAll(async () => {
    // Two separate primaries: the test moves the name from one to the other.
    serverA = await startRedis({ dir: tempDir('sentinel-a') });
    serverB = await startRedis({ dir: tempDir('sentinel-b') });
    adminA = new Redis({ host: serverA.host, port: serverA.port, connectionName: 'georep-test' });
    adminB = new Redis({ host: serverB.host, port: serverB.port, connectionName: 'georep-test' });
  });
  afterAll(async () => {
    adminA?.disconnect();
    adminB?.disconnect();
    await Promise.all([serverA?.stop(), serverB?.stop()]);
  });
  beforeEach(async () => {
    masters = [at(serverA)];
    peers = [];
    await Promise.all([adminA.flushall(), adminB.flushall()]);
    endpoint = await start();
  });
  afterEach(async () => {
    for (const made of clients.splice(0)) made.disconnect();
    await Promise.all(endpoints.splice(0).map((e) => e.close()));
  });

  it('sentinel endpoint - redis-cli gets the primary address of a name', async () => {
    const cli = findBinary('redis-cli');
    const args = ['-h', HOST, '-p', String(endpoint.port), 'SENTINEL', 'get-master-addr-by-name'];
    const { stdout } = await run(cli, [...args, 'eu-west']);
    expect(stdout).toBe(`${serverA.host}\n${serverA.port}\n`);
    const { stdout: myId } = await run(cli, ['-p', String(endpoint.port), 'sentinel', 'myid']);
    expect(myId.trim()).toBe(view.myId);
  });

  it('sentinel endpoint - an ioredis Sentinel client moves to the new primary after its connection is killed', async () => {
    const app = sentinelClient();
    await app.set('before', '1');
    expect(await adminA.get('before')).toBe('1');

    masters = [at(serverB)];
    endpoint.refresh();
    // What Sentinel does after a failover: drop the clients of the old primary.
    await adminA.call('CLIENT', 'KILL', 'TYPE', 'normal');

    await app.set('after', '2');
    expect(await adminB.get('after')).toBe('2');
    expect(await adminA.get('after')).toBeNull();
  });

  it('sentinel endpoint - an ioredis client with failoverDetector follows +switch-master alone', async () => {
    const app = sentinelClient({ failoverDetector: true });
    const subscribed = once(app, 'failoverSubscribed');
    await app.set('before', '1');
    await subscribed;
    expect(await adminA.get('before')).toBe('1');

    const reconnected = once(app, 'ready');
    masters = [at(serverB)];
    endpoint.refresh(); // no CLIENT KILL: the event alone must move the client
    await reconnected;

    await app.set('after', '2');
    expect(await adminB.get('after')).toBe('2');
    expect(await adminA.get('after')).toBeNull();
  });

  it('sentinel endpoint - subscribers get the exact +switch-master message, once per change', async () => {
    const subscriber = client({ host: HOST, port: endpoint.port });
    const patternSubscriber = client({ host: HOST, port: endpoint.port });
    const messages: string[][] = [];
    subscriber.on('message', (channel: string, message: string) =>
      messages.push([channel, message]),
    );
    patternSubscriber.on('pmessage', (pattern: string, channel: string, message: string) =>
      messages.push([pattern, channel, message]),
    );
    expect(await subscriber.subscribe('+switch-master', '+failover-end')).toBe(2);
    expect(await patternSubscriber.psubscribe('+sw?tch-[lm]aster')).toBe(1);

    masters = [at(serverB)];
    endpoint.refresh();
    endpoint.refresh(); // nothing changed since: nothing more is published
    endpoint.publish('+failover-end', 'master eu-west 127.0.0.1 1');

    const switched = `eu-west ${serverA.host} ${serverA.port} ${serverB.host} ${serverB.port}`;
    await waitFor(
      () => messages.length,
      (n) => n >= 3,
      { what: 'three messages' },
    );
    await delay(50); // a duplicate would arrive right behind
    expect(messages).toHaveLength(3);
    expect(messages).toContainEqual(['+switch-master', switched]);
    expect(messages).toContainEqual(['+sw?tch-[lm]aster', '+switch-master', switched]);
    expect(messages).toContainEqual(['+failover-end', 'master eu-west 127.0.0.1 1']);
    // In subscribed mode only pub/sub commands and PING are accepted, as in Redis.
    expect(await subscriber.ping()).toEqual(['pong', '']);
  });

  it('sentinel endpoint - SENTINEL masters, replicas and sentinels have the fields of a real Sentinel', async () => {
    masters = [
      {
        ...at(serverA),
        primary: { host: serverA.host, port: serverA.port, runId: 'a'.repeat(40) },
        replicas: [
          { host: '10.0.0.2', port: 6380, up: true, offset: 1234, priority: 50, lagBytes: 7 },
          { host: '10.0.0.3', port: 6381, up: false },
        ],
        quorum: 2,
        downAfterMs: 5000,
        failoverTimeoutMs: 60_000,
      },
      { name: 'eu-west:s2', primary: { host: '10.0.1.1', port: 7000 }, replicas: [] },
    ];
    peers = [
      { host: '10.0.9.1', port: 26379 },
      { host: '10.0.9.2', port: 26379, runId: 'b'.repeat(40) },
    ];
    const admin = client({ host: HOST, port: endpoint.port });

    const all = (await admin.call('SENTINEL', 'masters')) as unknown[];
    expect(all).toHaveLength(2);
    const master = pack(all[0]);
    expect(Object.keys(master)).toEqual(MASTER_FIELDS);
    expect(master).toMatchObject({
      name: 'eu-west',
      ip: serverA.host,
      port: String(serverA.port),
      runid: 'a'.repeat(40),
      flags: 'master',
      'num-slaves': '2',
      'num-other-sentinels': '2',
      quorum: '2',
      'down-after-milliseconds': '5000',
      'failover-timeout': '60000',
    });
    // The same entry by name; only the age of the primary has moved on.
    expect(pack(await admin.call('SENTINEL', 'MASTER', 'eu-west'))).toEqual({
      ...master,
      'role-reported-time': expect.stringMatching(/^\d+$/),
    });
    // Defaults: a majority of three sentinels, Sentinel's timeouts.
    expect(pack(all[1])).toMatchObject({ quorum: '2', 'failover-timeout': '180000', runid: '' });

    const replicas = ((await admin.call('SENTINEL', 'replicas', 'eu-west')) as unknown[]).map(pack);
    expect(Object.keys(replicas[0]!)).toEqual([...REPLICA_FIELDS, 'georep-lag-bytes']);
    expect(replicas[0]).toMatchObject({
      name: '10.0.0.2:6380',
      flags: 'slave',
      'master-link-status': 'ok',
      'master-host': serverA.host,
      'master-port': String(serverA.port),
      'slave-priority': '50',
      'slave-repl-offset': '1234',
      'georep-lag-bytes': '7',
    });
    expect(Object.keys(replicas[1]!)).toEqual(REPLICA_FIELDS);
    expect(replicas[1]).toMatchObject({ flags: 'slave,s_down', 'master-link-status': 'err' });
    expect(await admin.call('SENTINEL', 'slaves', 'eu-west')).toEqual(
      await admin.call('SENTINEL', 'replicas', 'eu-west'),
    );

    const sentinels = ((await admin.call('SENTINEL', 'sentinels', 'eu-west')) as unknown[]).map(
      pack,
    );
    expect(sentinels.map((s) => Object.keys(s))).toEqual([SENTINEL_FIELDS, SENTINEL_FIELDS]);
    expect(sentinels[0]).toMatchObject({ ip: '10.0.9.1', port: '26379', flags: 'sentinel' });
    expect(sentinels[0]!.runid).toMatch(/^[0-9a-f]{40}$/);
    expect(sentinels[1]).toMatchObject({ name: 'b'.repeat(40), runid: 'b'.repeat(40) });

    expect(await admin.call('SENTINEL', 'ckquorum', 'eu-west')).toBe(
      'OK 3 usable Sentinels. Quorum and failover authorization can be reached',
    );
    expect(
      await admin.call('SENTINEL', 'is-master-down-by-addr', serverA.host, serverA.port, 0, '*'),
    ).toEqual([0, '*', 0]);
    expect(await admin.call('ROLE')).toEqual(['sentinel', ['eu-west', 'eu-west:s2']]);
    const info = await admin.info('sentinel');
    expect(info).toContain('sentinel_masters:2');
    expect(info).toContain(
      `master0:name=eu-west,status=ok,address=${serverA.host}:${serverA.port},slaves=2,sentinels=3`,
    );
    expect(await admin.info('server')).toContain('redis_mode:sentinel');
  });

  it('sentinel endpoint - an unknown name gets a nil reply or "No such master"', async () => {
    const admin = client({ host: HOST, port: endpoint.port });
    expect(await admin.call('SENTINEL', 'get-master-addr-by-name', 'nope')).toBeNull();
    const raw = await exchange(endpoint.port, ['SENTINEL get-master-addr-by-name nope\r\n'], (t) =>
      t.endsWith('\r\n'),
    );
    expect(raw.text).toBe('*-1\r\n');
    for (const sub of ['master', 'replicas', 'sentinels', 'ckquorum']) {
      await expect(admin.call('SENTINEL', sub, 'nope')).rejects.toThrow(
        'ERR No such master with that name',
      );
    }
  });

  it('sentinel endpoint - unknown commands and subcommands get the errors Redis gives', async () => {
    const lines = ['GET key\r\n', 'sentinel bogus\r\n', 'SENTINEL get-master-addr-by-name\r\n'];
    const expected =
      "-ERR unknown command 'GET', with args beginning with: 'key' \r\n" +
      "-ERR unknown subcommand 'bogus'. Try SENTINEL HELP.\r\n" +
      "-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n";
    const raw = await exchange(endpoint.port, [lines.join('')], (t) => t.length >= expected.length);
    expect(raw).toEqual({ text: expected, closed: false });
    const admin = client({ host: HOST, port: endpoint.port });
    await expect(admin.call('SENTINEL', 'failover', 'eu-west')).rejects.toThrow(/read-only/);
  });

  it('sentinel endpoint - AUTH is required when a password is set', async () => {
    const guarded = await start({ password: 'sekret' });
    const raw = await exchange(
      guarded.port,
      ['PING\r\nAUTH wrong\r\nAUTH sekret\r\nPING\r\n'],
      (t) => t.endsWith('+PONG\r\n'),
    );
    expect(raw.text).toBe(
      '-NOAUTH Authentication required.\r\n' +
        '-WRONGPASS invalid username-password pair or user is disabled.\r\n' +
        '+OK\r\n+PONG\r\n',
    );
    // As in Redis 7, an unauthenticated client may not send big requests.
    const big = await exchange(guarded.port, ['*20\r\n']);
    expect(big).toEqual({
      text: '-ERR Protocol error: invalid multibulk length\r\n',
      closed: true,
    });

    const sentinels = [{ host: HOST, port: guarded.port }];
    const app = client({ sentinels, name: 'eu-west', sentinelPassword: 'sekret' });
    await app.set('k', 'v');
    expect(await adminA.get('k')).toBe('v');
    const anonymous = client({
      sentinels,
      name: 'eu-west',
      lazyConnect: true,
      sentinelRetryStrategy: () => null,
    });
    await expect(anonymous.connect()).rejects.toThrow(/NOAUTH/);
  });

  it('sentinel endpoint - protocol garbage closes that connection and others are still served', async () => {
    const healthy = client({ host: HOST, port: endpoint.port });
    expect(await healthy.ping()).toBe('PONG');
    const cases: [string | Buffer, string][] = [
      ['*abc\r\n', 'invalid multibulk length'],
      ['*5000\r\n', 'invalid multibulk length'],
      ['*1\r\n$2000000\r\n', 'invalid bulk length'],
      ['*2\r\n$4\r\nPING\r\n:1\r\n', "expected '$', got ':'"],
      ['*1\r\n$4\r\nPINGxx\r\n', 'expected CRLF after bulk data'],
      ['"unterminated\r\n', 'unbalanced quotes in request'],
      [Buffer.from([0x2a, 0x31, 0x0d, 0x0a, 0x24, 0xff, 0x00, 0x0d, 0x0a]), 'invalid bulk length'],
      ['x'.repeat(65 * 1024), 'too big inline request'],
    ];
    for (const [payload, message] of cases) {
      const raw = await exchange(endpoint.port, [payload]);
      expect(raw, message).toEqual({ text: `-ERR Protocol error: ${message}\r\n`, closed: true });
    }
    // Whole commands before the garbage are still answered.
    const mixed = await exchange(endpoint.port, ['PING\r\n*1\r\n:1\r\n']);
    expect(mixed).toEqual({
      text: "+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n",
      closed: true,
    });
    expect(await healthy.ping()).toBe('PONG');
    expect(await healthy.call('SENTINEL', 'get-master-addr-by-name', 'eu-west')).toEqual([
      serverA.host,
      String(serverA.port),
    ]);
  });

  it('sentinel endpoint - requests split across packets and inline commands are answered', async () => {
    const request =
      '*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$7\r\neu-west\r\n' +
      'ping "hello world"\r\n\r\n';
    const expected =
      `*2\r\n$${serverA.host.length}\r\n${serverA.host}\r\n` +
      `$${String(serverA.port).length}\r\n${serverA.port}\r\n` +
      '$11\r\nhello world\r\n';
    // Three bytes at a time, so every element is cut somewhere.
    const chunks = request.match(/[\s\S]{1,3}/g)!;
    const raw = await exchange(endpoint.port, chunks, (t) => t.length >= expected.length);
    expect(raw).toEqual({ text: expected, closed: false });
  });

  it('sentinel endpoint - connections beyond the limit are refused with an error', async () => {
    const small = await start({ limits: { maxConnections: 2 } });
    const first = client({ host: HOST, port: small.port });
    const second = client({ host: HOST, port: small.port });
    await Promise.all([first.ping(), second.ping()]);
    const refused = await exchange(small.port, ['PING\r\n']);
    expect(refused).toEqual({ text: '-ERR max number of clients reached\r\n', closed: true });

    second.disconnect();
    await waitFor(
      () => small.connections,
      (n) => n === 1,
      { what: 'a free connection slot' },
    );
    const served = await exchange(small.port, ['PING\r\n'], (t) => t.endsWith('\r\n'));
    expect(served.text).toBe('+PONG\r\n');
  });

  it('sentinel endpoint - a failing view costs one error reply, not the connection', async () => {
    const failing = await start({
      view: {
        myId: view.myId,
        masters: () => {
          throw new Error('routing table not loaded');
        },
        sentinels: () => [],
      },
    });
    // No ready check: it sends INFO, which reads the failing view too.
    const admin = client({ host: HOST, port: failing.port, enableReadyCheck: false });
    await expect(admin.call('SENTINEL', 'get-master-addr-by-name', 'eu-west')).rejects.toThrow(
      /routing table not loaded/,
    );
    expect(() => failing.refresh()).not.toThrow();
    expect(await admin.ping()).toBe('PONG');
  });

  it('sentinel endpoint - start rejects a run id that is not 40 hex digits', async () => {
    await expect(start({ view: { ...view, myId: 'short' } })).rejects.toMatchObject({
      code: 'config.sentinel-id',
    });
  });
});
