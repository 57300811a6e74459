/**
 * Snapshots in the agent: point-in-time export of one of this region's nodes into this region's
 * snapshot store, listed in the group's catalog. The store is a JetStream Object Store bucket of
 * this region (readable from every region) or a local directory. Exports prefer a healthy replica
 * so the primary does not fork.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  ConflictError,
  NotFoundError,
  configuredNodes,
  makeLogger,
  type AgentConfig,
  type Logger,
  type NodeSample,
  type SchedulePreference,
  type ScheduleStoreKind,
} from '@georep/core';
import { exportRdb } from '@georep/redis';
import {
  DirectorySnapshotStore,
  ObjectStoreSnapshotStore,
  importRdb,
  snapshotBucketName,
  snapshotMetaFromExport,
  snapshotNameOf,
  validateSnapshotName,
  type SnapshotMeta,
  type ImportRdbResult,
  type SnapshotStore,
} from '@georep/snapshot';
import type { GroupPlane } from './group-plane.js';

/**
 * Opens the object store, retrying for a while: right after the NATS servers start, JetStream has
 * no meta leader yet (it needs a majority of the supercluster) and every API call times out.
 */
async function openWithRetry<T>(open: () => Promise<T>, totalMs = 20_000): Promise<T> {
  const deadline = Date.now() + totalMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 2000)));
    }
  }
}

/** What an import request says (validated by the API layer). */
export interface ImportRequest {
  name: string;
  mode: 'replace' | 'merge';
  onConflict?: 'skip' | 'replace';
  match?: string;
  db?: number;
}

/** What an export request may say. */
export interface ExportRequest {
  node?: string;
  name?: string;
  /** Another store than the configured one (a schedule's `--store`). */
  store?: ScheduleStoreKind;
  /** Extra catalog fields (a schedule's id and slot), so retention finds its own snapshots. */
  labels?: Record<string, string | number | boolean | null>;
}

/** See the module comment. */
export class SnapshotPlane {
  readonly #config: AgentConfig;
  readonly #plane: GroupPlane;
  readonly #latestNodes: () => NodeSample[];
  readonly #log: Logger;
  #nc: NatsConnection | null = null;
  /** Stores by kind, opened on first use. */
  readonly #stores = new Map<ScheduleStoreKind, Promise<SnapshotStore>>();
  /** Names of exports running now: reserved before the first await. */
  readonly #inFlight = new Set<string>();

  constructor(config: AgentConfig, plane: GroupPlane, latestNodes: () => NodeSample[]) {
    this.#config = config;
    this.#plane = plane;
    this.#latestNodes = latestNodes;
    this.#log = makeLogger('snapshots');
  }

  attach(nc: NatsConnection): void {
    this.#nc = nc;
  }

  /** Where this region's snapshots go (for messages and `snapshot list`). */
  get location(): string {
    return this.locationOf(this.#config.snapshots.store);
  }

  /** Where snapshots of a store kind go. */
  locationOf(kind: ScheduleStoreKind): string {
    return kind === 'directory'
      ? this.#directory()
      : `nats:${snapshotBucketName(this.#config.group, this.#config.region)}`;
  }

  /** The kind of this region's store at `location` (a catalog entry's `store`), if it is one. */
  kindAt(location: string): ScheduleStoreKind | undefined {
    return (['object-store', 'directory'] as const).find((k) => this.locationOf(k) === location);
  }

  #directory(): string {
    return (
      this.#config.snapshots.dir ??
      join(this.#config.dataDir ?? join(tmpdir(), 'georep'), 'snapshots')
    );
  }

  /** The store, opened on first use (JetStream may not be ready when the agent starts). */
  store(kind: ScheduleStoreKind = this.#config.snapshots.store): Promise<SnapshotStore> {
    let opened = this.#stores.get(kind);
    if (opened === undefined) {
      if (kind === 'directory') {
        opened = DirectorySnapshotStore.open(this.#directory());
      } else {
        const nc = this.#nc;
        if (nc === null) {
          return Promise.reject(
            new ConflictError(
              'snapshot.store-unavailable',
              'the agent is not connected to NATS yet',
              {
                hint: 'retry in a moment; check georep status',
              },
            ),
          );
        }
        opened = openWithRetry(() =>
          ObjectStoreSnapshotStore.open(nc, {
            bucket: snapshotBucketName(this.#config.group, this.#config.region),
            placementCluster: this.#config.region,
          }),
        );
      }
      this.#stores.set(kind, opened);
      // A failed open is retried on the next call.
      opened.catch(() => this.#stores.delete(kind));
    }
    return opened;
  }

  /**
   * Chooses the node to export: the one asked for, else a healthy replica (if preferred), else the
   * primary. `prefer` (a schedule's) overrides `snapshots.preferReplica`: `replica-only` never
   * falls back to the primary, `primary` never uses a replica.
   */
  chooseNode(requested: string | undefined, prefer?: SchedulePreference): NodeSample {
    const samples = this.#latestNodes();
    const known = configuredNodes(this.#config).map((n) => n.id);
    if (requested !== undefined) {
      const sample = samples.find((n) => n.id === requested);
      if (sample === undefined) {
        throw new NotFoundError(
          'node.not-found',
          `node ${requested} is not a node of region ${this.#config.region}`,
          {
            hint: `nodes: ${known.join(', ')}`,
          },
        );
      }
      if (!sample.up) {
        throw new ConflictError(
          'snapshot.node-down',
          `node ${requested} is down: ${sample.error ?? 'no answer'}`,
          {
            hint: 'choose another node (georep status shows which are up) or omit --node',
          },
        );
      }
      return sample;
    }
    const replicas = samples
      .filter((n) => n.up && n.role === 'replica' && n.primary?.linkUp === true)
      .sort((a, b) => (a.lagBytes ?? 0) - (b.lagBytes ?? 0));
    const primary = samples.find((n) => n.up && n.role === 'primary');
    if (prefer === 'replica-only' && replicas[0] === undefined) {
      throw new ConflictError(
        'snapshot.no-replica',
        `no replica of region ${this.#config.region} is up with its link to the primary up`,
        {
          hint: 'georep status shows the replicas; or let the schedule use the primary (--prefer replica-first)',
        },
      );
    }
    const preferReplica =
      prefer === undefined ? this.#config.snapshots.preferReplica : prefer !== 'primary';
    const chosen =
      prefer === 'primary'
        ? primary
        : ((preferReplica ? replicas[0] : undefined) ?? primary ?? replicas[0]);
    if (chosen === undefined) {
      throw new ConflictError(
        'snapshot.no-node',
        `no node of region ${this.#config.region} is up`,
        {
          hint: 'georep status shows the nodes and why they are down',
        },
      );
    }
    return chosen;
  }

  /** Exports a node into the store and catalogues the snapshot. */
  async export(
    request: ExportRequest,
    node: NodeSample,
    operationId: string | null,
  ): Promise<SnapshotMeta> {
    const name = request.name ?? snapshotNameOf(this.#config.region, new Date());
    validateSnapshotName(name);
    if (this.#plane.document.snapshot(name) !== undefined || this.#inFlight.has(name)) {
      throw new ConflictError('snapshot.exists', `a snapshot named ${name} already exists`, {
        hint: 'choose another --name',
      });
    }
    const store = await this.store(request.store);
    const spool = join(this.#config.dataDir ?? tmpdir(), 'snapshot-spool');
    mkdirSync(spool, { recursive: true });
    const file = join(spool, `${name}.${operationId ?? 'direct'}.rdb`);
    this.#inFlight.add(name);
    try {
      const result = await exportRdb({
        node: { host: node.host, port: node.port },
        config: this.#config.redis,
        out: file,
      });
      const meta = snapshotMetaFromExport(result, {
        group: this.#config.group,
        region: this.#config.region,
        node: node.id,
        name,
      });
      const stored = await store.put(meta, file);
      this.#plane.document.addSnapshot(
        name,
        {
          ...stored,
          store: request.store === undefined ? this.location : this.locationOf(request.store),
          ...request.labels,
        },
        { region: this.#config.region, operationId },
      );
      this.#log.info(
        { name, node: node.id, bytes: result.bytes, pointInTime: result.pointInTime },
        'snapshot exported',
      );
      return stored;
    } finally {
      this.#inFlight.delete(name);
      rmSync(file, { force: true });
    }
  }

  /**
   * Imports a catalogued snapshot into this region's primary (RESTORE-based, verified before
   * anything is written). The snapshot may come from any region's object store. With
   * replication on, what it writes is replicated like any other write.
   */
  async import(request: ImportRequest): Promise<ImportRdbResult> {
    const entry = this.#plane.document.snapshot(request.name);
    if (entry === undefined) {
      throw new NotFoundError('snapshot.not-found', `no snapshot ${request.name} in the catalog`, {
        hint: 'georep snapshot list shows the snapshots',
      });
    }
    const region = typeof entry.region === 'string' ? entry.region : '';
    const location = typeof entry.store === 'string' ? entry.store : '';
    let store: SnapshotStore;
    if (region === this.#config.region) {
      store = await this.store();
    } else if (location.startsWith('nats:')) {
      const nc = this.#nc;
      if (nc === null) {
        throw new ConflictError(
          'snapshot.store-unavailable',
          'the agent is not connected to NATS yet',
          {
            hint: 'retry in a moment; check georep status',
          },
        );
      }
      store = await ObjectStoreSnapshotStore.open(nc, {
        bucket: snapshotBucketName(this.#config.group, region),
      });
    } else {
      throw new ConflictError(
        'snapshot.store-unreachable',
        `snapshot ${request.name} is in a directory of region ${region} (${location}), which this region cannot read`,
        { hint: `import it in region ${region}, or download it there and use --target` },
      );
    }
    const primary = this.#latestNodes().find((n) => n.up && n.role === 'primary');
    if (primary === undefined) {
      throw new ConflictError(
        'snapshot.no-node',
        `the primary of ${this.#config.region} is not up`,
        {
          hint: 'georep status shows the nodes and why they are down',
        },
      );
    }
    const result = await importRdb({
      source: () => store.read(request.name),
      target: {
        node: { host: primary.host, port: primary.port },
        config: this.#config.redis,
        ...(request.db === undefined ? {} : { db: request.db }),
      },
      mode: request.mode,
      ...(request.mode === 'merge' ? { onConflict: request.onConflict ?? 'skip' } : {}),
      ...(request.match === undefined ? {} : { match: request.match }),
    });
    this.#log.info(
      { name: request.name, from: region, keysWritten: result.keysWritten, mode: request.mode },
      'snapshot imported',
    );
    return result;
  }

  /** Deletes one of this region's snapshots from the store (of `kind`) and the catalog. */
  async delete(
    name: string,
    operationId: string | null,
    kind?: ScheduleStoreKind,
  ): Promise<boolean> {
    const store = await this.store(kind);
    const removed = await store.delete(name);
    const uncatalogued = this.#plane.document.removeSnapshot(name, {
      region: this.#config.region,
      operationId,
    });
    if (!removed && !uncatalogued) {
      throw new NotFoundError(
        'snapshot.not-found',
        `no snapshot ${name} in region ${this.#config.region}`,
        {
          hint: 'georep snapshot list shows every snapshot with its region',
        },
      );
    }
    return true;
  }
}
