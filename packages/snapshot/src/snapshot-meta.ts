/**
 * What is known about a stored snapshot without reading it: where it came from, when, how big,
 * and its CRC64, so a download can be verified and a restore can be chosen from a listing.
 */
import type { ExportRdbResult } from '@georep/redis';
import { InvalidSnapshotNameError } from './errors.js';

/** Metadata stored next to every snapshot. */
export interface SnapshotMeta {
  /** Unique name within a store, `[A-Za-z0-9._-]{1,128}` (see {@link snapshotNameOf}). */
  name: string;
  /** Replication group of the source. */
  group: string;
  /** Region of the source node. */
  region: string;
  /** Node id (or `host:port`) the snapshot was taken from. */
  node: string;
  /** When the snapshot was taken, Unix ms. */
  createdAt: number;
  /** Size of the RDB file in bytes. */
  size: number;
  /** The RDB's stored CRC64 (its last 8 bytes, little-endian), as 16 lower-case hex digits. */
  crc: string;
  /** RDB format version of the file (10 = Redis 7.0, 11 = 7.2, 12 = 7.4+, 80 = Valkey 9). */
  rdbVersion: number;
  /** Version of the server that wrote it, when known. */
  redisVersion: string | null;
  /** Total number of keys. */
  keys: number;
  /** Keys per database number (keys are decimal strings so the record survives JSON). */
  keysPerDb: Record<string, number>;
  /** Replication id at the snapshot, when taken through PSYNC. */
  replid: string | null;
  /** Replication offset at the snapshot, when known. */
  offset: number | null;
  /** True only for PSYNC snapshots: the dataset at exactly `replid`/`offset`. */
  pointInTime: boolean;
  /** How the RDB was produced. */
  source: 'psync' | 'scan-dump' | 'file';
}

const NAME_RE = /^[A-Za-z0-9._-]{1,128}$/;

/** Whether `name` is a valid snapshot name. `.` and `..` are refused: they are paths. */
export function isValidSnapshotName(name: string): boolean {
  return NAME_RE.test(name) && name !== '.' && name !== '..';
}

/**
 * Returns `name` when it is a valid snapshot name.
 *
 * @throws InvalidSnapshotNameError (`snapshot.invalid-name`) otherwise.
 */
export function assertSnapshotName(name: string): string {
  if (!isValidSnapshotName(name)) throw new InvalidSnapshotNameError(name);
  return name;
}

/** Same as {@link assertSnapshotName}; the name the agent and CLI use. */
export const validateSnapshotName: (name: string) => string = assertSnapshotName;

/**
 * The conventional name of a snapshot of `region` taken at `date`: the region, then the UTC
 * time in ISO 8601 basic format, so names sort chronologically per region.
 *
 * @example snapshotNameOf('eu-west', new Date('2026-11-23T18:15:00Z')) // 'eu-west-20261123T181500Z'
 */
export function snapshotNameOf(region: string, date: Date): string {
  const stamp = date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
  return assertSnapshotName(`${region}-${stamp}`);
}

/**
 * Builds the metadata of a snapshot from the result of `exportRdb`, so the CLI and the agent
 * describe exported files the same way.
 */
export function snapshotMetaFromExport(
  result: ExportRdbResult,
  origin: { group: string; region: string; node: string; name?: string; createdAt?: number },
): SnapshotMeta {
  const createdAt = origin.createdAt ?? Date.now();
  const keysPerDb: Record<string, number> = {};
  for (const [db, n] of Object.entries(result.keysPerDb ?? {})) keysPerDb[db] = n;
  return {
    name: origin.name ?? snapshotNameOf(origin.region, new Date(createdAt)),
    group: origin.group,
    region: origin.region,
    node: origin.node,
    createdAt,
    size: result.bytes,
    crc: result.crc.toLowerCase().padStart(16, '0'),
    rdbVersion: result.rdbVersion,
    redisVersion: result.redisVersion ?? null,
    keys: Object.values(keysPerDb).reduce((a, b) => a + b, 0),
    keysPerDb,
    replid: result.replid === '' ? null : result.replid,
    offset: result.offset,
    pointInTime: result.pointInTime,
    source: result.source,
  };
}

/** Newest first; ties broken by name (descending) so the order is total and stable. */
export function compareNewestFirst(a: SnapshotMeta, b: SnapshotMeta): number {
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return a.name < b.name ? 1 : a.name > b.name ? -1 : 0;
}

/**
 * Parses stored metadata (JSON text), returning undefined when it is not a snapshot record:
 * stores skip foreign files instead of failing a whole listing on one stray entry.
 */
export function parseSnapshotMeta(text: string): SnapshotMeta | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Partial<SnapshotMeta>;
  if (
    typeof m.name !== 'string' ||
    typeof m.size !== 'number' ||
    typeof m.crc !== 'string' ||
    typeof m.createdAt !== 'number' ||
    typeof m.rdbVersion !== 'number'
  ) {
    return undefined;
  }
  return {
    name: m.name,
    group: m.group ?? '',
    region: m.region ?? '',
    node: m.node ?? '',
    createdAt: m.createdAt,
    size: m.size,
    crc: m.crc,
    rdbVersion: m.rdbVersion,
    redisVersion: m.redisVersion ?? null,
    keys: m.keys ?? 0,
    keysPerDb: m.keysPerDb ?? {},
    replid: m.replid ?? null,
    offset: m.offset ?? null,
    pointInTime: m.pointInTime ?? false,
    source: m.source ?? 'file',
  };
}
