/**
 * The transport of batches over a real two-region NATS supercluster: region eu-west owns the
 * stream (placed in its cluster), region us-east pulls it through its own server and the
 * gateway. The servers are shared by the file; each test uses its own group, hence its own
 * stream.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@georep/core';
import {
  BadBatchError,
  OpsStream,
  OriginUnreachableError,
  PeerConsumerMissingError,
  PeerFeed,
  encodeBatch,
  opsStreamName,
  type FeedBatch,
  type FeedItem,
  type OpBatch,
  type PeerFeedOptions,
} from '@georep/replication';
import { NatsServer, getFreePorts, natsJetStreamReady, tempDir, waitFor } from '@georep/testkit';

const A = 'eu-west';
const B = 'us-east';
const MB = 1024 * 1024;

let servers: Record<string, NatsServer>;
let ncA: NatsConnection;
let ncB: NatsConnection;
let jsmA: JetStreamManager;
let jsmB: JetStreamManager;
const feeds: PeerFeed[] = [];

async function jetStreamReady(): Promise<void> {
  for (const s of Object.values(servers)) {
    await waitFor(
      () => natsJetStreamReady(s.host, s.monitorPort),
      (ok) => ok,
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `JetStream meta leader seen by ${s.options.serverName}`,
      },
    );
  }
}

beforeAll(async () => {
  const dir = tempDir('transport');
  const [gwA, gwB, clA, clB] = await getFreePorts(4, '127.0.0.1');
  const remotes = [
    { name: A, port: gwA! },
    { name: B, port: gwB! },
  ];
  servers = {};
  for (const [name, gw, cl] of [
    [A, gwA!, clA!],
    [B, gwB!, clB!],
  ] as const) {
    servers[name] = await NatsServer.start({
      dir: join(dir, name),
      serverName: name,
      clusterPort: cl,
      gateway: { port: gw, remotes },
    });
  }
  await jetStreamReady();
  ncA = await connect({
    servers: servers[A]!.url,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  ncB = await connect({
    servers: servers[B]!.url,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  jsmA = await jetstreamManager(ncA);
  jsmB = await jetstreamManager(ncB);
});

afterAll(async () => {
  await Promise.all(feeds.map((f) => f.stop()));
  await ncA?.close();
  await ncB?.close();
  await Promise.all(Object.values(servers ?? {}).map((s) => s.stop()));
});

const T = (n: number) => `${String(1_732_540_000_000 + n).padStart(15, '0')}.000000.${A}`;

function batch(seq: number, dumpBytes = 16): OpBatch {
  return {
    v: 1,
    origin: A,
    seq,
    ops: [
      {
        kind: 'value',
        db: 0,
        key: Buffer.from(`k${seq}`),
        tag: T(seq),
        dump: randomBytes(dumpBytes),
        pttl: 0,
        ob: {},
      },
    ],
  };
}

/** A fresh group (so a fresh stream) with the stream placed in region A. */
async function setup(options: { maxBytes?: number; peers?: string[]; ackWaitMs?: number } = {}) {
  const group = `t${randomBytes(4).toString('hex')}`;
  const stream = await OpsStream.ensure(jsmA, {
    group,
    region: A,
    placementCluster: A,
    maxBytes: options.maxBytes ?? 8 * MB,
    duplicateWindowMs: 60_000,
  });
  // Peers create their consumers from their own region, through the gateway.
  const remote = OpsStream.attach(jsmB, group, A);
  for (const peer of options.peers ?? [B]) {
    await remote.ensurePeerConsumer(peer, { ackWaitMs: options.ackWaitMs ?? 30_000 });
  }
  const publish = async (b: OpBatch) => stream.publish(b, encodeBatch(b));
  return { group, stream, publish };
}

function feedOf(group: string, peer = B, extra: Partial<PeerFeedOptions> = {}) {
  const feed = new PeerFeed({
    nc: ncB,
    group,
    origin: A,
    peer,
    expiresMs: 2000,
    backoff: { initialMs: 100, maxMs: 1000 },
    logger: silentLogger,
    ...extra,
  });
  feeds.push(feed);
  return { feed, it: feed[Symbol.asyncIterator]() };
}

/** The next item of `it` whose type is in `types` (others are skipped), within `timeoutMs`. */
async function next<K extends FeedItem['type'] = 'batch'>(
  it: AsyncIterator<FeedItem>,
  types: K[] = ['batch' as K],
  timeoutMs = 10_000,
): Promise<Extract<FeedItem, { type: K }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left))),
    ]);
    clearTimeout(timer);
    if (r === 'timeout') throw new Error(`no ${types.join('/')} item within ${timeoutMs} ms`);
    if (r.done === true) throw new Error('the feed ended');
    if ((types as string[]).includes(r.value.type)) {
      return r.value as Extract<FeedItem, { type: K }>;
    }
  }
}

const streamState = async (group: string) =>
  (await jsmA.streams.info(opsStreamName(group, A))).state;

describe('transport over a two-region supercluster', () => {
  it('stream - is placed in the origin cluster with interest retention and the peer consumer config', async () => {
    const { group, stream } = await setup();
    const info = await jsmB.streams.info(stream.name);
    expect(stream.name).toBe(`GEOREP_OPS_${group}_${A}`);
    expect(stream.subject).toBe(`georep.${group}.ops.${A}`);
    expect(info.cluster?.name).toBe(A);
    expect(info.config).toMatchObject({
      subjects: [stream.subject],
      retention: 'interest',
      discard: 'old',
      storage: 'file',
      max_bytes: 8 * MB,
      duplicate_window: 60_000 * 1e6,
    });
    const ci = await jsmA.consumers.info(stream.name, `peer-${B}`);
    expect(ci.config).toMatchObject({
      durable_name: `peer-${B}`,
      ack_policy: 'explicit',
      deliver_policy: 'all',
      max_ack_pending: 64,
      ack_wait: 30_000 * 1e6,
    });
    // Ensuring again is a no-op; changed limits are applied in place.
    await OpsStream.ensure(jsmA, {
      group,
      region: A,
      placementCluster: A,
      maxBytes: 4 * MB,
      duplicateWindowMs: 60_000,
    });
    expect((await jsmA.streams.info(stream.name)).config.max_bytes).toBe(4 * MB);
  });

  it('feed - batches published in region A arrive in order in region B and are acked', async () => {
    const { group, publish } = await setup();
    const sent = [1, 2, 3, 4, 5].map((seq) => batch(seq));
    for (const b of sent) expect((await publish(b)).seq).toBe(b.seq);
    const { feed, it } = feedOf(group);
    for (let seq = 1; seq <= 5; seq++) {
      const item = await next(it);
      expect(item.batch).toEqual(sent[seq - 1]);
      expect(item.streamSeq).toBe(seq);
      expect(item.deliveryCount).toBe(1);
      expect(item.pending).toBe(5 - seq);
      expect(await item.ack()).toBe(true);
    }
    const backlog = await OpsStream.attach(jsmB, group, A).backlog(B);
    expect(backlog).toMatchObject({
      pendingMessages: 0,
      pendingBytes: 0,
      oldestAgeMs: 0,
      lost: false,
    });
    await feed.stop();
  });

  it('publish - a re-published message id is dropped as a duplicate', async () => {
    const { group, publish } = await setup();
    const first = await publish(batch(1));
    const again = await publish(batch(1));
    expect(first).toEqual({ seq: 1, duplicate: false });
    expect(again).toEqual({ seq: 1, duplicate: true });
    expect((await publish(batch(2))).seq).toBe(2);
    expect((await streamState(group)).messages).toBe(2);
  });

  it('feed - an unacked batch is delivered again after the ack wait, a naked one at once', async () => {
    const { group, publish } = await setup({ ackWaitMs: 1000 });
    await publish(batch(1));
    const { feed, it } = feedOf(group);
    const first = await next(it);
    expect(first.deliveryCount).toBe(1);
    // Not acked: the server sends it again once the ack wait is over.
    const again = await next(it);
    expect([again.streamSeq, again.batch.seq, again.deliveryCount]).toEqual([1, 1, 2]);
    again.nak();
    const third = await next(it, ['batch'], 900);
    expect([third.streamSeq, third.deliveryCount]).toEqual([1, 3]);
    expect(await third.ack()).toBe(true);
    await publish(batch(2));
    expect((await next(it)).streamSeq).toBe(2);
    await feed.stop();
  });

  it('retention - a batch stays until every peer acked it (interest), then the stream drops it', async () => {
    const C = 'ap-south';
    const { group, publish } = await setup({ peers: [B, C] });
    await publish(batch(1));
    await publish(batch(2));
    const b = feedOf(group, B);
    for (let i = 0; i < 2; i++) expect(await (await next(b.it)).ack()).toBe(true);
    expect((await streamState(group)).messages).toBe(2);
    const c = feedOf(group, C);
    for (let i = 0; i < 2; i++) expect(await (await next(c.it)).ack()).toBe(true);
    await waitFor(
      () => streamState(group),
      (s) => s.messages === 0 && s.bytes === 0,
    );
    // A peer linked now starts at the next batch: what was dropped before is no gap for it.
    const D = 'ap-east';
    await OpsStream.attach(jsmB, group, A).ensurePeerConsumer(D);
    await publish(batch(3));
    const d = feedOf(group, D);
    const first = await next(d.it, ['lost', 'batch']);
    expect(first.type === 'batch' && first.streamSeq).toBe(3);
    await Promise.all([b.feed.stop(), c.feed.stop(), d.feed.stop()]);
  });

  it('unlink - deleting the only peer consumer frees the stream', async () => {
    const { group, stream, publish } = await setup();
    for (let seq = 1; seq <= 10; seq++) await publish(batch(seq, 1000));
    const before = await streamState(group);
    expect(before.messages).toBe(10);
    expect(before.bytes).toBeGreaterThan(10_000);
    const backlog = await stream.backlog(B);
    expect(backlog.pendingMessages).toBe(10);
    expect(backlog.pendingBytes).toBe(before.bytes);
    expect(backlog.streamBytes).toBe(before.bytes);
    expect(backlog.oldestAgeMs).toBeGreaterThanOrEqual(0);
    expect(await OpsStream.attach(jsmB, group, A).deletePeerConsumer(B)).toBe(true);
    expect(await stream.deletePeerConsumer(B)).toBe(false);
    const after = await waitFor(
      () => streamState(group),
      (s) => s.bytes < before.bytes,
    );
    expect(after.messages).toBe(0);
  });

  it('backlog - lost once the byte limit discarded batches the peer had not acked', async () => {
    const { group, stream, publish } = await setup({ maxBytes: 8 * 1024 });
    await publish(batch(1, 1000));
    const fine = await stream.backlog(B);
    expect(fine).toMatchObject({ pendingMessages: 1, lost: false, streamLimitBytes: 8 * 1024 });
    for (let seq = 2; seq <= 20; seq++) await publish(batch(seq, 1000));
    const backlog = await stream.backlog(B);
    expect(backlog.streamBytes).toBeLessThanOrEqual(8 * 1024);
    expect(backlog.pendingMessages).toBeLessThan(20);
    expect(backlog.lost).toBe(true);
    // The feed says so too, before the first batch after the gap.
    const first = (await streamState(group)).first_seq;
    const { feed, it } = feedOf(group);
    const lost = await next(it, ['lost', 'batch']);
    expect(lost).toEqual({ type: 'lost', fromSeq: 1, toSeq: first - 1 });
    const after = await next(it, ['lost', 'batch']);
    expect(after.type === 'batch' && after.streamSeq).toBe(first);
    await feed.stop();
  });

  it('feed - garbage on the subject is terminated and reported as replication.bad-batch', async () => {
    const { group, stream, publish } = await setup({ ackWaitMs: 1000 });
    await publish(batch(1));
    await ncA.request(stream.subject, new TextEncoder().encode('not a batch'));
    await publish(batch(2));
    const { feed, it } = feedOf(group);
    const types = ['batch', 'rejected'] as Array<'batch' | 'rejected'>;
    const first = (await next(it, types)) as FeedBatch;
    expect(first.streamSeq).toBe(1);
    await first.ack();
    const bad = await next(it, types);
    expect(bad.type).toBe('rejected');
    if (bad.type !== 'rejected') return;
    expect(bad.error).toBeInstanceOf(BadBatchError);
    expect(bad.error.code).toBe('replication.bad-batch');
    expect(bad.error.message).toMatch(/not MessagePack/);
    expect(bad.streamSeq).toBe(2);
    const second = (await next(it, types)) as FeedBatch;
    expect([second.type, second.streamSeq]).toEqual(['batch', 3]);
    await second.ack();
    // Terminated, not redelivered after the ack wait, and dropped from the stream like an ack.
    await expect(next(it, types, 2000)).rejects.toThrow(/no batch\/rejected item/);
    await waitFor(
      () => streamState(group),
      (s) => s.messages === 0,
    );
    await feed.stop();
  });

  it('feed - a missing consumer stalls the feed until it is created', async () => {
    const { group, stream, publish } = await setup({ peers: [] });
    const { feed, it } = feedOf(group);
    const stalled = await next(it, ['stalled']);
    expect(stalled.error).toBeInstanceOf(PeerConsumerMissingError);
    expect(stalled.error.code).toBe('replication.peer-consumer-missing');
    await stream.ensurePeerConsumer(B);
    await publish(batch(1));
    await next(it, ['resumed']);
    expect((await next(it)).batch.seq).toBe(1);
    await feed.stop();
  });

  it('feed - stop() ends a feed waiting for batches promptly', async () => {
    const { group } = await setup();
    const { feed, it } = feedOf(group, B, { expiresMs: 30_000 });
    const pending = it.next();
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await feed.stop();
    expect((await pending).done).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('feed - rides out an unreachable origin region and resumes when the gateway is back', async () => {
    const { group, publish } = await setup();
    await publish(batch(1));
    const { feed, it } = feedOf(group);
    expect(await (await next(it)).ack()).toBe(true);
    // Region A loses its gateways: B's server has no route to the stream any more.
    await servers[A]!.setGateways(false);
    const stalled = await next(it, ['stalled'], 15_000);
    expect(stalled.error).toBeInstanceOf(OriginUnreachableError);
    expect(stalled.error.code).toBe('replication.origin-unreachable');
    await servers[A]!.setGateways(true);
    await jetStreamReady();
    await waitFor(
      () => publish(batch(2)),
      (r) => r.seq === 2,
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    await next(it, ['resumed'], 15_000);
    const item = await next(it, ['batch'], 15_000);
    expect(item.batch.seq).toBe(2);
    expect(await item.ack()).toBe(true);
    await feed.stop();
  });
});
