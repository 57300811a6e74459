/**
 * A snapshot store in a JetStream Object Store bucket, so every region's agent (and the CLI)
 * can reach snapshots through the NATS system it already uses, with JetStream's replication and
 * placement instead of a shared filesystem.
 *
 * Each snapshot is one object named after the snapshot; its {@link SnapshotMeta} travels as JSON
 * in the object's `metadata` record (part of the object's meta message, so it is stored and
 * replaced atomically with the object and needs no server feature beyond Object Store itself).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectInfo, type ObjectStore } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  SnapshotCorruptError,
  SnapshotExistsError,
  SnapshotNotFoundError,
  SnapshotStoreError,
} from './errors.js';
import { checkDigest, RdbDigest } from './rdb-digest.js';
import {
  assertSnapshotName,
  compareNewestFirst,
  parseSnapshotMeta,
  type SnapshotMeta,
} from './snapshot-meta.js';
import type { SnapshotStore } from './store.js';
import { verifiedStream, writeVerifiedFile } from './verified-io.js';

/** Key of the object `metadata` entry holding the snapshot's metadata as JSON. */
const META_KEY = 'georep-snapshot';
/** Chunk size of uploads: fewer, larger messages upload faster; must stay under max_payload. */
const CHUNK_BYTES = 256 * 1024;
/** Chunks requested per fetch when reading: bounds read-ahead memory to about 2 MB. */
const FETCH_CHUNKS = 8;
/** How long one fetch of chunks waits for the server. */
const FETCH_EXPIRES_MS = 3000;
/** Empty fetches in a row after which the object is missing chunks (about 30 s). */
const FETCH_ATTEMPTS = 10;
const READ_CHUNK = 1024 * 1024;

/**
 * The bucket name for a group's region: `georep_<group>_<region>`, with every character that
 * bucket names do not allow (anything but letters, digits, `_` and `-`) replaced by `_`.
 */
export function snapshotBucketName(group: string, region: string): string {
  return `georep_${group}_${region}`.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** Options of {@link ObjectStoreSnapshotStore.open}. */
export interface ObjectStoreSnapshotStoreOptions {
  /** Bucket name (see {@link snapshotBucketName}); created when missing. */
  bucket: string;
  /** Place the bucket's stream in this JetStream cluster (only applied when creating it). */
  placementCluster?: string;
  /** Stream replicas when creating the bucket (default 1). */
  replicas?: number;
}

/** Snapshots as objects of a JetStream Object Store bucket. */
export class ObjectStoreSnapshotStore implements SnapshotStore {
  readonly kind = 'object-store' as const;
  /** `nats:<bucket>`. */
  readonly location: string;
  readonly #bucket: string;
  readonly #os: ObjectStore;
  readonly #js: JetStreamClient;

  private constructor(bucket: string, os: ObjectStore, js: JetStreamClient) {
    this.#bucket = bucket;
    this.location = `nats:${bucket}`;
    this.#os = os;
    this.#js = js;
  }

  /** Opens the bucket, creating it (with the given placement) when it does not exist. */
  static async open(
    nc: NatsConnection,
    options: ObjectStoreSnapshotStoreOptions,
  ): Promise<ObjectStoreSnapshotStore> {
    const js = jetstream(nc);
    try {
      const os = await new Objm(js).create(options.bucket, {
        description: 'georep snapshots',
        replicas: options.replicas ?? 1,
        ...(options.placementCluster === undefined
          ? {}
          : { placement: { cluster: options.placementCluster, tags: [] } }),
      });
      return new ObjectStoreSnapshotStore(options.bucket, os, js);
    } catch (err) {
      throw new SnapshotStoreError(`cannot open object store bucket ${options.bucket}`, {
        cause: err,
        hint: 'Check that JetStream is enabled on the NATS servers and the account may create streams.',
      });
    }
  }

  async put(meta: SnapshotMeta, file: string): Promise<SnapshotMeta> {
    const name = assertSnapshotName(meta.name);
    const existing = await this.#os.info(name);
    if (existing !== null && !existing.deleted) throw new SnapshotExistsError(name, this.location);
    // The metadata (with the measured size and CRC) must be known before the upload starts:
    // it is part of the object's meta message. A local pre-pass is cheap next to the upload.
    const pre = new RdbDigest();
    for await (const chunk of createReadStream(file, { highWaterMark: READ_CHUNK })) {
      pre.update(chunk as Buffer);
    }
    const measured = pre.finish();
    checkDigest(name, measured, meta);
    const stored: SnapshotMeta = { ...meta, size: measured.size, crc: measured.storedCrc };
    // The file is read again for the upload; it must not have changed in between.
    const during = new RdbDigest();
    const upload = passThrough(createReadStream(file, { highWaterMark: READ_CHUNK }), during);
    try {
      await this.#os.put(
        {
          name,
          description: `georep snapshot of ${stored.group}/${stored.region} (${stored.source})`,
          metadata: { [META_KEY]: JSON.stringify(stored) },
          options: { max_chunk_size: CHUNK_BYTES },
        },
        toReadableStream(upload),
        // Expect the meta subject's current revision: a concurrent put of the same name loses.
        { previousRevision: existing?.revision ?? 0 },
      );
    } catch (err) {
      const now = await this.#os.info(name).catch(() => null);
      if (now !== null && !now.deleted) {
        throw new SnapshotExistsError(name, this.location, { cause: err });
      }
      throw new SnapshotStoreError(`cannot upload snapshot ${name} to ${this.location}`, {
        cause: err,
      });
    }
    const after = during.finish();
    if (after.size !== measured.size || after.storedCrc !== measured.storedCrc) {
      await this.#os.delete(name).catch(() => undefined);
      throw new SnapshotCorruptError(name, 'size', `${file} changed while it was uploaded`);
    }
    return stored;
  }

  async download(name: string, outFile: string): Promise<SnapshotMeta> {
    const { info, meta } = await this.#require(name);
    await writeVerifiedFile(name, this.#chunks(info), outFile, meta);
    return meta;
  }

  read(name: string): AsyncIterable<Uint8Array> {
    return { [Symbol.asyncIterator]: () => this.#stream(name) };
  }

  async head(name: string): Promise<SnapshotMeta | null> {
    assertSnapshotName(name);
    const info = await this.#os.info(name);
    return info === null ? null : metaOf(info);
  }

  async list(): Promise<SnapshotMeta[]> {
    const infos = await this.#os.list();
    const metas: SnapshotMeta[] = [];
    for (const info of infos) {
      const meta = metaOf(info);
      if (meta !== null) metas.push(meta);
    }
    return metas.sort(compareNewestFirst);
  }

  async delete(name: string): Promise<boolean> {
    assertSnapshotName(name);
    const info = await this.#os.info(name);
    if (info === null || info.deleted) return false;
    await this.#os.delete(name);
    return true;
  }

  async *#stream(name: string): AsyncGenerator<Uint8Array, void, undefined> {
    const { info, meta } = await this.#require(name);
    yield* verifiedStream(name, this.#chunks(info), meta);
  }

  async #require(name: string): Promise<{ info: ObjectInfo; meta: SnapshotMeta }> {
    assertSnapshotName(name);
    const info = await this.#os.info(name);
    const meta = info === null ? null : metaOf(info);
    if (info === null || meta === null) throw new SnapshotNotFoundError(name, this.location);
    return { info, meta };
  }

  /**
   * The object's chunks in order, checked against the object's SHA-256 digest.
   *
   * `ObjectStore.get` pushes chunks into its stream as fast as the server sends them, so a slow
   * reader (an import) would buffer the whole object. An ordered pull consumer fetching a few
   * chunks at a time keeps memory bounded by {@link FETCH_CHUNKS} chunks instead.
   */
  async *#chunks(info: ObjectInfo): AsyncGenerator<Uint8Array, void, undefined> {
    if (info.chunks === 0) return;
    const consumer = await this.#js.consumers.get(`OBJ_${this.#bucket}`, {
      filter_subjects: `$O.${this.#bucket}.C.${info.nuid}`,
    });
    const sha = createHash('sha256');
    let received = 0;
    let emptyFetches = 0;
    try {
      while (received < info.chunks) {
        // Short fetches, retried: across a gateway a pull request (or its answer) can be lost
        // while the gateway learns the reply subject's interest, and one long fetch would then
        // wait its whole expiry for nothing.
        const batch = await consumer.fetch({
          max_messages: Math.min(FETCH_CHUNKS, info.chunks - received),
          expires: FETCH_EXPIRES_MS,
        });
        let got = 0;
        for await (const m of batch) {
          got++;
          received++;
          sha.update(m.data);
          yield m.data;
        }
        emptyFetches = got === 0 ? emptyFetches + 1 : 0;
        if (emptyFetches >= FETCH_ATTEMPTS) {
          throw new SnapshotCorruptError(
            info.name,
            'size',
            `object has ${info.chunks} chunks, only ${received} could be read`,
          );
        }
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
    const expected = info.digest.replace(/^SHA-256=/, '').replace(/=+$/, '');
    const actual = sha.digest('base64url');
    if (expected !== actual) {
      throw new SnapshotCorruptError(info.name, 'digest', 'the object store digest does not match');
    }
  }
}

/** The snapshot metadata of an object, or null for deleted or foreign objects. */
function metaOf(info: ObjectInfo): SnapshotMeta | null {
  if (info.deleted) return null;
  const text = info.metadata?.[META_KEY];
  if (text === undefined) return null;
  const meta = parseSnapshotMeta(text);
  return meta !== undefined && meta.name === info.name ? meta : null;
}

/** Yields `source` unchanged while feeding `digest`. */
async function* passThrough(
  source: AsyncIterable<Buffer>,
  digest: RdbDigest,
): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const chunk of source) {
    digest.update(chunk);
    yield chunk;
  }
}

/** A pull-based web stream over an async iterable: one chunk is read per `pull`, so no read-ahead. */
function toReadableStream(source: AsyncIterable<Uint8Array>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await it.next();
        if (r.done === true) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 1 },
  );
}
