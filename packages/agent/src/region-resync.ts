/**
 * `link R --resync`, run by R's own agent: R's data is replaced by the group's, and R is linked.
 * The writes R took while it was out (force-unlinked, or unlinked) are dropped, not merged.
 *
 * The operation runner that won the vote sets R `linking` with a `resync` entry (source region S)
 * in the group document. Then R's agent:
 * 1. waits until every linked peer has a consumer for R on each of its shard streams (their
 *    replication planes create them for a `linking` region with a resync): every batch published
 *    from then on is kept for R;
 * 2. deletes R's own streams: they hold R's writes from before, which must not reach anyone;
 * 3. per shard that S has too: exports R's own data of the shard as a snapshot `diverged-…` in
 *    R's store (kept apart: the operator may inspect it or merge parts of it by hand);
 *    has S's agent export the shard's primary into S's object store,
 *    downloads it, and loads it into R's primary of the shard natively (a full sync: every key,
 *    georep's metadata included, so R's tags are the group's); deletes the outbox it brought
 *    (S's batches), and saves as capture's position the point where the primary was promoted
 *    after the load, so that capture continues from there without a full sync (which would tag
 *    every key as a new write) and misses no write made into R since the promotion;
 * 4. clears R's watermarks (what it had applied no longer holds) and links R. Its capture and
 *    feeds start; the peers' consumers deliver what S had not applied at the snapshot (applying
 *    twice is a no-op).
 * A failure puts R back in its previous state and fails the operation; it can be repeated. The
 * agent that runs R after one died in the middle (the same one restarted, or a second agent of R
 * taking over) first undoes a load the dead one left running (the primary would otherwise stay a
 * replica of a listener that is gone), found by its marker in the data directory or in the
 * resync's entry of the group document, then runs the resync again from the start: the diverged
 * snapshot already kept is not taken again, and each run exports the source under names of its
 * own.
 *
 * Application writes into R before the load are replaced by it (R is a replica during the load and
 * refuses writes); writes after the load are captured and replicated.
 */
import { randomBytes } from 'node:crypto';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  ConflictError,
  GeorepError,
  makeLogger,
  serializeError,
  type AgentConfig,
  type ApiReply,
  type GroupSubjects,
  type Logger,
  type NodeSample,
  type OperationView,
  type RegionActivity,
  type StatusReport,
} from '@georep/core';
import {
  regionShards,
  resyncOf,
  setResync,
  setResyncLoad,
  writeFileAtomic,
  type ResyncDoc,
  type ResyncLoad,
} from '@georep/group';
import { parseInfo } from '@georep/redis';
import {
  FilePositionStore,
  OUTBOX_KEY,
  POSITION_KEY,
  opsStreamName,
  peerConsumerName,
  primaryClient,
  type Position,
} from '@georep/replication';
import {
  ObjectStoreSnapshotStore,
  abandonNativeImport,
  importRdbNative,
  snapshotBucketName,
} from '@georep/snapshot';
import type { GroupPlane } from './group-plane.js';
import type { ReplicationPlane } from './replication-plane.js';
import { positionFile, replicationDataDir } from './shard-replication.js';

/** How long the peers have to create their consumers for the region. */
const CONSUMERS_TIMEOUT_MS = 60_000;
/** How long a shard of this region may be without an up primary before the resync fails. */
const PRIMARY_WAIT_MS = 15_000;
/** How long the source's export of one shard may take. */
const EXPORT_TIMEOUT_MS = 30 * 60_000;

/** What the resync needs from the agent. */
export interface ResyncContext {
  config: AgentConfig;
  plane: GroupPlane;
  replication: ReplicationPlane;
  subjects: GroupSubjects;
  nc: () => NatsConnection | null;
  /** This agent's report: the peers' nodes come from their heartbeats. */
  report: () => StatusReport;
  /** This region's up primary of a shard. */
  primary: (shard: string) => NodeSample | undefined;
  /** Exports a node of this region into its own snapshot store as `name` (kept, not merged). */
  keep: (node: NodeSample, name: string, operationId: string) => Promise<void>;
}

/** See the module comment. */
export class RegionResync {
  readonly #ctx: ResyncContext;
  readonly #log: Logger;
  #running: Promise<void> | null = null;
  #since = 0;
  /** The undo of loads whose agent died, while it runs (see {@link check}). */
  #recovering: Promise<void> | null = null;
  /** When a load still alive was last logged (once a minute, not at every check). */
  #aliveLoggedAt = 0;

  constructor(ctx: ResyncContext) {
    this.#ctx = ctx;
    this.#log = makeLogger('resync');
  }

  /**
   * Starts the resync of this region when the document asks for one. Called every second. While
   * a load is recorded that no run of this agent's process is doing (left by its previous process
   * or by another agent of the region), that load is undone first, and no resync starts: it would
   * find no primary, and the load may still be alive.
   */
  check(): void {
    const { plane, config } = this.#ctx;
    if (this.#running !== null || this.#recovering !== null) return;
    const left = this.#recordedLoads();
    if (left.length > 0) {
      this.#recovering = this.#undoInterruptedLoads(left).finally(() => (this.#recovering = null));
      return;
    }
    const resync = resyncOf(plane.document, config.region);
    if (resync === null) return;
    if (plane.linkState !== 'linking') return;
    const op = plane.document.operation(resync.operationId);
    if (op === undefined || op.status !== 'running') return;
    this.#since = Date.now();
    this.#running = this.#run(resync).finally(() => (this.#running = null));
  }

  /** `resyncing` while a resync runs (shown by status next to the region's state). */
  get activity(): RegionActivity | null {
    if (this.#running === null) return null;
    const resync = resyncOf(this.#ctx.plane.document, this.#ctx.config.region);
    return { kind: 'resyncing', operationId: resync?.operationId ?? null, since: this.#since };
  }

  /**
   * The loads recorded by markers in this agent's data directory (left by its previous process)
   * and in the resync entry of the group document (left by any agent of the region: this one
   * restarted with its data directory lost, or another one this agent took over from).
   */
  #recordedLoads(): RecordedLoad[] {
    const { config, plane } = this.#ctx;
    const dir = resyncDir(config);
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(LOADING)) : [];
    return [
      ...files.map((file) => {
        const path = join(dir, file);
        return { where: path, load: readMarker(path), forget: () => rmSync(path, { force: true }) };
      }),
      ...Object.entries(resyncOf(plane.document, config.region)?.loads ?? {}).map(
        ([shard, load]) => ({
          where: `group document, shard ${shard}`,
          load,
          forget: () => setResyncLoad(plane.document, config.region, shard, null),
        }),
      ),
    ];
  }

  /**
   * A load whose agent died leaves its node replicating from that agent's listener: it is made a
   * primary again, and its markers are dropped. A load that still looks alive (the node receiving
   * or loading it, or linked to the listener) is left for a later check. A marker that cannot be
   * read, or names a node this agent does not have, is dropped with a warning.
   */
  async #undoInterruptedLoads(loads: RecordedLoad[]): Promise<void> {
    const { config } = this.#ctx;
    for (const { where, load, forget } of loads) {
      const known = config.redis.nodes.some(
        (n) => n.host === load?.node.host && n.port === load.node.port,
      );
      if (load === null || !known) {
        this.#log.warn(
          { marker: where, node: load?.node },
          'a resync load marker that is unreadable or names a node not in the config was dropped; check that node is a primary',
        );
        forget();
        continue;
      }
      try {
        const undone = await abandonNativeImport(
          { node: load.node, config: config.redis },
          load.master,
        );
        if (undone) {
          this.#log.warn(
            { node: load.node, marker: where },
            'a resync load whose agent died was undone; the node is a primary again',
          );
        }
        forget();
      } catch (err) {
        // Tried again at the next check: the node answers once it is back, a load ends.
        const alive = err instanceof GeorepError && err.code === 'import.native-in-progress';
        if (!alive || Date.now() - this.#aliveLoggedAt > 60_000) {
          if (alive) this.#aliveLoggedAt = Date.now();
          this.#log.warn(
            { marker: where, err: (err as Error).message },
            'resync load not undone yet; no resync starts until it is',
          );
        }
        return;
      }
    }
  }

  async #run(resync: ResyncDoc): Promise<void> {
    const { plane, config } = this.#ctx;
    const doc = plane.document;
    const by = { region: config.region, operationId: resync.operationId };
    this.#log.warn({ from: resync.from }, 'link --resync: replacing this region data');
    try {
      await this.#ctx.replication.hold();
      // Without replication there is no group data in this region to replace: it links.
      const result = config.replication.enabled
        ? await this.#replace(resync, randomBytes(3).toString('hex'))
        : { replaced: [], note: `replication is off in ${config.region}: nothing was replaced` };
      doc.clearWatermarks(config.region);
      setResync(doc, config.region, null);
      doc.setLinkState(config.region, 'linked', by);
      doc.updateOperation(resync.operationId, {
        status: 'succeeded',
        result: {
          region: config.region,
          linkState: 'linked',
          epoch: doc.epoch,
          resync: true,
          from: resync.from,
          ...result,
        },
      });
      this.#log.info({ from: resync.from, ...result }, 'link --resync done');
      this.#ctx.replication.release();
    } catch (err) {
      this.#ctx.replication.release();
      this.#log.error({ err: (err as Error).message }, 'link --resync failed');
      setResync(doc, config.region, null);
      doc.setLinkState(config.region, resync.previous, by);
      const e = serializeError(err);
      doc.updateOperation(resync.operationId, {
        status: 'failed',
        error: {
          code: e.code,
          message: e.message,
          ...(e.hint === undefined ? {} : { hint: e.hint }),
        },
      });
    }
  }

  async #replace(resync: ResyncDoc, attempt: string): Promise<Record<string, unknown>> {
    const { from, operationId } = resync;
    const { config, plane } = this.#ctx;
    const nc = this.#ctx.nc();
    if (nc === null) throw new ConflictError('resync.not-connected', 'not connected to NATS yet');
    const jsm = await jetstreamManager(nc);
    const doc = plane.document;
    const mine = this.#ctx.replication.shards;
    const peers = doc.linkedRegions().filter((r) => r !== config.region);

    // 1. Every peer keeps what it publishes from now on for this region.
    const deadline = Date.now() + CONSUMERS_TIMEOUT_MS;
    for (const peer of peers) {
      for (const shard of regionShards(doc, peer).filter((s) => mine.includes(s))) {
        const stream = opsStreamName(config.group, peer, shard);
        for (;;) {
          const ok = await jsm.consumers
            .info(stream, peerConsumerName(config.region))
            .then(() => true)
            .catch(() => false);
          if (ok) break;
          if (Date.now() > deadline) {
            throw new ConflictError(
              'resync.no-consumer',
              `${peer} has not created the consumer of ${config.region} on ${stream}`,
              { hint: `check that ${peer}'s agent runs (georep status), then repeat the link` },
            );
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }

    // 2. This region's writes from before go nowhere.
    for (const shard of mine) {
      await jsm.streams
        .delete(opsStreamName(config.group, config.region, shard))
        .catch(() => false);
    }
    this.#ctx.replication.forgetStreams();

    // 3. Shard by shard, the source's data with its metadata.
    const theirs = regionShards(doc, from);
    const replaced: Array<{
      shard: string;
      keysLoaded: number;
      bytes: number;
      loadMs: number;
      divergedSnapshot: string;
    }> = [];
    const notReplaced = mine.filter((s) => !theirs.includes(s));
    const dir = resyncDir(config);
    mkdirSync(dir, { recursive: true });
    await this.#dropEarlierExports(nc, from, operationId);
    for (const shard of mine.filter((s) => theirs.includes(s))) {
      replaced.push(await this.#replaceShard(nc, from, shard, dir, operationId, attempt));
    }
    // An export an earlier run asked for may have been catalogued since the start, or may still
    // be running at the source: swept once those have ended, without holding up the link.
    void this.#sweepExportsLater(nc, from, operationId);
    return { replaced, notReplaced };
  }

  async #replaceShard(
    nc: NatsConnection,
    from: string,
    shard: string,
    dir: string,
    operationId: string,
    attempt: string,
  ): Promise<{
    shard: string;
    keysLoaded: number;
    bytes: number;
    loadMs: number;
    divergedSnapshot: string;
  }> {
    const { config } = this.#ctx;
    const source = this.#ctx
      .report()
      .regions.find((r) => r.name === from)
      ?.nodes.find((n) => n.up && n.role === 'primary' && (n.shard ?? 'main') === shard);
    if (source === undefined) {
      throw new ConflictError(
        'resync.no-source-node',
        `${from} has no primary of shard ${shard} up (as its heartbeats say)`,
        { hint: `georep status shows ${from}'s nodes; repeat the link once it is up` },
      );
    }
    // The health samples may lag a node that just became a primary again (after an undo, a
    // restart): a short wait before giving up.
    const deadline = Date.now() + PRIMARY_WAIT_MS;
    let target = this.#ctx.primary(shard);
    while (target === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      target = this.#ctx.primary(shard);
    }
    if (target === undefined) {
      throw new ConflictError(
        'resync.no-node',
        `the primary of shard ${shard} of ${config.region} is not up`,
        { hint: 'georep status shows the nodes and why they are down' },
      );
    }
    // Named after the whole operation id and this run: a repeated resync (a new operation) and a
    // run after an agent restart (the first run's export may be gone already) export anew.
    const name = `${exportPrefix(config.region, operationId)}${shard}-${attempt}`;
    const divergedSnapshot = `diverged-${config.region}-${shard}-${operationId}`;
    if (this.#ctx.plane.document.snapshot(divergedSnapshot) === undefined)
      await this.#ctx.keep(target, divergedSnapshot, operationId);
    await this.#exportAt(nc, from, { node: source.id, name });
    const file = join(dir, `${name}.rdb`);
    try {
      const store = await ObjectStoreSnapshotStore.open(nc, {
        bucket: snapshotBucketName(config.group, from),
      });
      await pipeline(Readable.from(store.read(name)), createWriteStream(file));
      const node = { host: target.host, port: target.port };
      const marker = join(dir, `${shard}${LOADING}`);
      const forget = () => {
        rmSync(marker, { force: true });
        setResyncLoad(this.#ctx.plane.document, config.region, shard, null);
      };
      let master: ResyncLoad['master'] | undefined;
      let loaded;
      try {
        loaded = await importRdbNative({
          file,
          target: { node, config: config.redis },
          listenHost: config.snapshots.nativeListenHost,
          ...(config.snapshots.nativeAdvertiseHost === undefined
            ? {}
            : { advertiseHost: config.snapshots.nativeAdvertiseHost }),
          onReplicaOf: (listener) => {
            master = listener;
            // Whole or not at all: a marker cut short by a crash would be unreadable.
            writeFileAtomic(
              marker,
              Buffer.from(
                JSON.stringify({ node, master: listener, operationId } satisfies LoadMarker),
              ),
            );
            setResyncLoad(this.#ctx.plane.document, config.region, shard, {
              node,
              master: listener,
            });
          },
        });
      } catch (err) {
        // importRdbNative tries to make the node a primary again; its markers stay until it is
        // one, for the next check to undo.
        if (master === undefined) forget();
        else
          await abandonNativeImport({ node, config: config.redis }, master).then(forget, () => {
            this.#log.warn(
              { shard, node },
              'the failed load is not undone yet; the next check retries',
            );
          });
        throw err;
      }
      forget();
      const position = await this.#restartPosition(target);
      new FilePositionStore(join(replicationDataDir(config), positionFile(shard))).save(position);
      this.#log.info(
        { shard, from, keys: loaded.keysLoaded, offset: position.offset },
        'shard replaced',
      );
      return {
        shard,
        keysLoaded: loaded.keysLoaded,
        bytes: loaded.bytes,
        loadMs: loaded.loadMs,
        divergedSnapshot,
      };
    } finally {
      rmSync(file, { force: true });
      // The snapshot served this resync only.
      void this.#api(nc, from, 'snapshot.delete', { name }).catch(() => undefined);
    }
  }

  /**
   * Drops the outbox the snapshot brought (the source's batches, already published by it) and
   * returns the position where the primary was promoted after the load: capture continues from
   * there. Not the current offset: application writes made since the promotion (and the outbox
   * delete) lie between the two, and capture must see them.
   */
  async #restartPosition(target: NodeSample): Promise<Position> {
    const client = primaryClient(target, this.#ctx.config.redis, 'georep-resync');
    try {
      await client.connect();
      await client.del(OUTBOX_KEY, `${OUTBOX_KEY}:1`);
      const info = parseInfo(await client.info('replication')).replication ?? {};
      const position = promotionPosition(info);
      if (position === undefined) {
        throw new GeorepError(
          'resync.no-position',
          `the primary of ${this.#ctx.config.region} reports no replication position from its promotion`,
          { hint: 'repeat the resync; the primary must run Redis 4.0 or later (PSYNC2)' },
        );
      }
      // The snapshot brought the source's mirrored position; a standby agent reads this one.
      await client.set(POSITION_KEY, JSON.stringify(position));
      return position;
    } finally {
      client.disconnect();
    }
  }

  /** Deletes exports that earlier runs of this operation left in `from`'s store. */
  async #dropEarlierExports(nc: NatsConnection, from: string, operationId: string): Promise<void> {
    const prefix = exportPrefix(this.#ctx.config.region, operationId);
    for (const entry of this.#ctx.plane.document.snapshots()) {
      const name = entry.name;
      if (typeof name !== 'string' || !name.startsWith(prefix)) continue;
      await this.#api(nc, from, 'snapshot.delete', { name }).catch(() => undefined);
    }
  }

  /**
   * Waits (at most as long as an export may take) until no export of this operation is running
   * at the source any more, then deletes what earlier runs left. Lost if this agent stops first.
   */
  async #sweepExportsLater(nc: NatsConnection, from: string, operationId: string): Promise<void> {
    const token = `resync:${exportPrefix(this.#ctx.config.region, operationId)}`;
    const deadline = Date.now() + EXPORT_TIMEOUT_MS;
    const running = () =>
      this.#ctx.plane.document
        .pendingOperations()
        .some((op) => op.clientToken?.startsWith(token) === true);
    while (running() && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5000).unref());
    await this.#dropEarlierExports(nc, from, operationId).catch(() => undefined);
  }

  /** Has `from`'s agent export `node` as `name`, and waits until the export operation ends. */
  async #exportAt(
    nc: NatsConnection,
    from: string,
    request: { node: string; name: string },
  ): Promise<void> {
    const op = await this.#api<OperationView>(nc, from, 'snapshot.export', {
      ...request,
      clientToken: `resync:${request.name}`,
      requestedBy: `georep-agent@${this.#ctx.config.region}`,
    });
    const deadline = Date.now() + EXPORT_TIMEOUT_MS;
    for (;;) {
      const now = this.#ctx.plane.document.operation(op.id);
      if (now?.status === 'succeeded') return;
      if (now?.status === 'failed' || now?.status === 'cancelled') {
        throw new ConflictError(
          'resync.export-failed',
          `${from} could not export shard node ${request.node}: ${now.error?.message ?? now.status}`,
          { hint: now.error?.hint ?? 'repeat the link once the cause is fixed' },
        );
      }
      if (Date.now() > deadline)
        throw new ConflictError('resync.export-timeout', `${from}'s export took too long`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async #api<T>(
    nc: NatsConnection,
    region: string,
    verb: string,
    body: Record<string, unknown>,
  ): Promise<T> {
    const reply = await nc.request(
      this.#ctx.subjects.regionApi(region, verb),
      JSON.stringify(body),
      { timeout: 10_000 },
    );
    const envelope = reply.json<ApiReply<T>>();
    if (!envelope.ok) {
      throw new ConflictError(
        'resync.source-refused',
        `${region} refused ${verb}: ${envelope.error.message}`,
        {
          ...(envelope.error.hint == null ? {} : { hint: envelope.error.hint }),
        },
      );
    }
    return envelope.result;
  }
}

/** Suffix of a load marker: `<shard>.loading.json`, kept while a load runs. */
const LOADING = '.loading.json';

/** A load found recorded, where it was found, and how to drop that record. */
interface RecordedLoad {
  where: string;
  load: ResyncLoad | null;
  forget: () => void;
}

/**
 * What a load marker file holds: enough to undo the load after this process died, and the
 * operation it served (for whoever reads the file; the undo needs only the load).
 */
interface LoadMarker extends ResyncLoad {
  operationId: string;
}

function readMarker(path: string): ResyncLoad | null {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as Partial<ResyncLoad>;
    const address = (a: unknown): a is { host: string; port: number } =>
      typeof a === 'object' &&
      a !== null &&
      typeof (a as { host?: unknown }).host === 'string' &&
      Number.isInteger((a as { port?: unknown }).port);
    if (!address(m.node) || !address(m.master)) return null;
    return { node: m.node, master: m.master };
  } catch {
    return null;
  }
}

function resyncDir(config: AgentConfig): string {
  return join(replicationDataDir(config), 'resync');
}

/** Start of the names of the exports a resync operation has the source make. */
function exportPrefix(region: string, operationId: string): string {
  return `resync-${region}-${operationId}-`;
}

/**
 * The point where a replica was promoted (`REPLICAOF NO ONE`), from its `INFO replication`: the
 * promotion keeps the old history as `master_replid2`, valid up to `second_repl_offset`, and a
 * partial resync under that id from there replays everything written since. The replication
 * stream of a new primary starts with a SELECT, so the database there is irrelevant (0).
 */
export function promotionPosition(info: Record<string, string | undefined>): Position | undefined {
  const replid = String(info.master_replid2 ?? '');
  const next = Number(info.second_repl_offset);
  if (!/^[0-9a-f]{40}$/.test(replid) || /^0+$/.test(replid) || !Number.isInteger(next) || next < 1)
    return undefined;
  return { replid, offset: next - 1, db: 0 };
}
