import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RdbPayloadDecoder, ReplicationLineReader, parsePayloadPreamble } from '@georep/redis';
import { startRedis, tempDir, waitFor, type RedisServer } from '@georep/testkit';
import { RespProtocolError, RespStreamParser, type RespCommand } from '@georep/replication';
import { clientOf, replOffset } from './helpers.js';

const resp = (...args: Array<string | Buffer>) =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((a) => [
      Buffer.from(`$${Buffer.byteLength(a)}\r\n`),
      Buffer.from(a),
      Buffer.from('\r\n'),
    ]),
  ]);

/** Parses `chunks` in order and returns every command. */
function parseChunks(chunks: Buffer[]): RespCommand[] {
  const parser = new RespStreamParser();
  const out: RespCommand[] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (let c = parser.next(); c !== undefined; c = parser.next()) out.push(c);
  }
  expect(parser.bufferedBytes).toBe(0);
  return out;
}

/** Splits `buf` at random points (deterministic for a seed). */
function randomSplit(buf: Buffer, seed: number, max: number): Buffer[] {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length;) {
    const n = 1 + Math.floor(rnd() * max);
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

const view = (cmds: RespCommand[]) =>
  cmds.map((c) => ({
    argv: c.argv.map((a) => a.toString('hex')),
    bytes: c.bytes,
    inline: c.inline,
  }));

/**
 * Records the raw replication stream of `server` while `writes` run: a bare replica handshake
 * asking for an empty RDB (`rdb-filter-only ""`, as `redis-cli --replica` does), then every byte.
 */
async function recordStream(server: RedisServer, client: Redis, writes: () => Promise<void>) {
  const socket = connect({ host: server.host, port: server.port });
  await new Promise((resolve) => socket.once('connect', resolve));
  const lines = new ReplicationLineReader();
  let decoder: RdbPayloadDecoder | undefined;
  let start = -1;
  const stream: Buffer[] = [];
  let acks: NodeJS.Timeout | undefined;
  socket.on('data', (chunk: Buffer) => {
    if (decoder?.done === true) return void stream.push(chunk);
    if (decoder !== undefined) {
      decoder.push(chunk);
    } else {
      lines.push(chunk);
      for (let line = lines.nextLine(); line !== undefined; line = lines.nextLine()) {
        // One command at a time: PSYNC is refused while replies are pending.
        if (line === '+OK') socket.write(handshake.shift()!);
        const full = /^\+FULLRESYNC \S+ (\d+)$/.exec(line);
        if (full !== null) start = Number(full[1]);
        const framing = parsePayloadPreamble(line);
        if (framing !== undefined) {
          decoder = new RdbPayloadDecoder(framing);
          decoder.push(lines.takeRest());
          break;
        }
      }
    }
    if (decoder?.done === true && acks === undefined) {
      // The primary ignores ACKs that arrive before its fork child is reaped: repeat it.
      acks = setInterval(() => socket.write(resp('REPLCONF', 'ACK', String(start))), 20);
    }
  });
  const handshake = [resp('REPLCONF', 'rdb-filter-only', ''), resp('PSYNC', '?', '-1')];
  socket.write(resp('REPLCONF', 'capa', 'eof'));
  await waitFor(
    () => decoder?.done === true,
    (d) => d,
    { what: 'the empty RDB' },
  );
  await new Promise((r) => setTimeout(r, 200));
  await writes();
  const end = await replOffset(client);
  await waitFor(
    () => Buffer.concat(stream).length,
    (n) => n >= end - start,
    { what: 'the stream' },
  );
  clearInterval(acks);
  socket.destroy();
  return { bytes: Buffer.concat(stream), start, end };
}

describe('RESP stream parser', () => {
  let server: RedisServer;
  let client: Redis;
  let recorded: { bytes: Buffer; start: number; end: number };

  beforeAll(async () => {
    server = await startRedis({ dir: tempDir('resp') });
    client = clientOf(server);
    recorded = await recordStream(server, client, async () => {
      await client.set('plain', 'value');
      await client.set('crlf', 'a\r\nb\r\n*2\r\n$3\r\n');
      await client.set(Buffer.from([0, 255, 13, 10]), Buffer.from([13, 13, 10, 10, 0]));
      await client.set('empty', '');
      await client.set('big', 'x'.repeat(200_000));
      await client.multi().incr('n').hset('h', 'f', 'v').exec();
      await client.pipeline().select(4).rpush('l', 'a', 'b', 'c').select(0).exec();
      await client.eval("redis.call('set', KEYS[1], ARGV[1])", 1, 'lua', 'ok');
    });
  });

  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('resp - a recorded stream parses into commands whose bytes add up to the offset', () => {
    const cmds = parseChunks([recorded.bytes]);
    expect(cmds.reduce((n, c) => n + c.bytes, 0)).toBe(recorded.end - recorded.start);
    const names = cmds.map((c) => c.argv[0]!.toString().toLowerCase());
    expect(names).toEqual([
      'select',
      'set',
      'set',
      'set',
      'set',
      'set',
      'multi',
      'incr',
      'hset',
      'exec',
      'select',
      'rpush',
      'select',
      'set',
    ]);
    expect(cmds[2]!.argv[2]!.toString()).toBe('a\r\nb\r\n*2\r\n$3\r\n');
    expect(cmds[3]!.argv[1]).toEqual(Buffer.from([0, 255, 13, 10]));
    expect(cmds[4]!.argv[2]!.length).toBe(0);
    expect(cmds[5]!.argv[2]!.length).toBe(200_000);
  });

  it('resp - every split point of the recorded stream gives the same commands and byte counts', () => {
    const whole = view(parseChunks([recorded.bytes]));
    // Byte by byte: every possible split point at once.
    const bytes = [...recorded.bytes].map((b) => Buffer.from([b]));
    expect(view(parseChunks(bytes))).toEqual(whole);
    // Every single split point of the commands before the big value, two chunks each.
    const headLength = whole.slice(0, 5).reduce((n, c) => n + c.bytes, 0);
    const head = recorded.bytes.subarray(0, headLength);
    const headWhole = whole.slice(0, 5);
    for (let i = 1; i < head.length; i++) {
      const parser = new RespStreamParser();
      const got: RespCommand[] = [];
      for (const part of [head.subarray(0, i), head.subarray(i)]) {
        parser.push(part);
        for (let c = parser.next(); c !== undefined; c = parser.next()) got.push(c);
      }
      expect(view(got)).toEqual(headWhole.slice(0, got.length));
      expect(got.length).toBe(headWhole.length);
    }
    for (let seed = 1; seed <= 20; seed++) {
      expect(view(parseChunks(randomSplit(recorded.bytes, seed, seed * 97)))).toEqual(whole);
    }
  });

  it('resp - inline commands, bare newlines and empty arrays count their bytes', () => {
    const input = Buffer.concat([
      Buffer.from('\n'),
      Buffer.from('PING\r\n'),
      Buffer.from('\r\n'),
      Buffer.from('*0\r\n'),
      resp('SET', 'k', 'v'),
      Buffer.from('  SET  a   b\n'),
    ]);
    for (const chunks of [[input], [...input].map((b) => Buffer.from([b]))]) {
      const cmds = parseChunks(chunks);
      expect(cmds.map((c) => [c.argv.map(String), c.bytes, c.inline])).toEqual([
        [[], 1, true],
        [['PING'], 6, true],
        [[], 2, true],
        [[], 4, false],
        [['SET', 'k', 'v'], 27, false],
        [['SET', 'a', 'b'], 13, true],
      ]);
    }
  });

  it('resp - a command keeps its bytes when the parser reuses its window', () => {
    const parser = new RespStreamParser();
    parser.push(resp('SET', 'k', 'first'));
    const first = parser.next()!;
    parser.push(resp('SET', 'k', 'other'));
    parser.next();
    expect(first.argv[2]!.toString()).toBe('first');
  });

  it('resp - garbage is a protocol error with its stream offset', () => {
    const cases: Array<[string, string]> = [
      ['*1\r\n+OK\r\n', "expected '$'"],
      ['*1\r\n$3\r\nabcXY', 'not terminated by CRLF'],
      ['*x\r\n', 'bad * header'],
      ['*1\r\n$-1\r\n', 'invalid bulk length'],
    ];
    for (const [input, message] of cases) {
      const parser = new RespStreamParser();
      parser.push(Buffer.from(resp('PING')));
      parser.next();
      parser.push(Buffer.from(input));
      let err: unknown;
      try {
        parser.next();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RespProtocolError);
      expect((err as RespProtocolError).code).toBe('capture.protocol-error');
      expect((err as RespProtocolError).message).toContain(message);
      expect((err as RespProtocolError).streamOffset).toBeGreaterThanOrEqual(14);
    }
    const big = new RespStreamParser({ maxBulkBytes: 10 });
    big.push(Buffer.from('*1\r\n$11\r\n'));
    expect(() => big.next()).toThrow(RespProtocolError);
  });
});
