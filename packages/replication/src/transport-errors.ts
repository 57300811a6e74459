/**
 * Errors of the transport of batches (`replication.*`): a message that is not a batch, and the
 * failures of the JetStream stream and consumers that carry batches between regions.
 */
import {
  GeorepError,
  NotFoundError,
  UnreachableError,
  type GeorepErrorOptions,
} from '@georep/core';

/**
 * A message is not a valid {@link OpBatch} (`replication.bad-batch`): not MessagePack, a wrong
 * version, a missing or mistyped field, an unknown kind or a malformed tag. Retrying cannot help:
 * the same bytes fail the same way, so a consumer terminates such a message instead of retrying.
 */
export class BadBatchError extends GeorepError {
  override name = 'BadBatchError';
  /** Where in the batch the problem is, e.g. `ops[3].tag`; `''` for the whole message. */
  readonly path: string;
  /** What is wrong there, e.g. `expected an encodeHlc() tag, got "x"`. */
  readonly reason: string;

  constructor(path: string, reason: string, options: GeorepErrorOptions = {}) {
    super('replication.bad-batch', `bad batch: ${path === '' ? '' : `${path}: `}${reason}`, {
      hint: 'the message was not written by a georep agent of this version; check what else publishes on the georep.<group>.ops.* subjects',
      ...options,
      details: { path, reason, ...options.details },
    });
    this.path = path;
    this.reason = reason;
  }
}

/** Where a stream operation was aimed, for messages and `details`. */
export interface OpsStreamTarget {
  stream: string;
  consumer?: string;
}

/**
 * Creating, updating or inspecting a region's ops stream or one of its peer consumers failed
 * (`replication.stream-failed`); the cause is the JetStream error.
 */
export class OpsStreamError extends GeorepError {
  override name = 'OpsStreamError';
  readonly stream: string;

  constructor(what: string, target: OpsStreamTarget, options: GeorepErrorOptions = {}) {
    const cause = options.cause instanceof Error ? options.cause.message : '';
    const noRoom = /insufficient (storage )?resources/i.test(cause);
    super(
      'replication.stream-failed',
      `${what} failed for ${describe(target)}${cause === '' ? '' : `: ${cause}`}`,
      {
        hint: noRoom
          ? "JetStream has no room for the stream: raise max_file_store of the region's NATS servers, or lower replication.streamMaxBytes (shared by the region's shards)"
          : 'check that JetStream is enabled and has a meta leader (every region of the supercluster reachable), and that the account may manage streams',
        ...options,
        details: { ...target, ...options.details },
      },
    );
    this.stream = target.stream;
  }
}

/** A batch could not be stored in the origin's stream (`replication.publish-failed`). */
export class OpsPublishError extends GeorepError {
  override name = 'OpsPublishError';
  readonly stream: string;
  readonly seq: number;

  constructor(stream: string, seq: number, options: GeorepErrorOptions = {}) {
    super('replication.publish-failed', `batch ${seq} could not be stored in ${stream}`, {
      hint: 'the batch stays in the outbox and is published again (same message id, so at most once)',
      ...options,
      details: { stream, seq, ...options.details },
    });
    this.stream = stream;
    this.seq = seq;
  }
}

/**
 * A peer feed cannot reach its origin's stream (`replication.origin-unreachable`): the gateway
 * to the origin is down, JetStream has no meta leader, or a request timed out. Transient: the
 * feed keeps retrying.
 */
export class OriginUnreachableError extends UnreachableError {
  override name = 'OriginUnreachableError';
  readonly origin: string;

  constructor(target: OpsStreamTarget, origin: string, options: GeorepErrorOptions = {}) {
    super('replication.origin-unreachable', `cannot pull from ${describe(target)}`, {
      hint: `the feed retries by itself; if it lasts, check the gateway to region ${origin}`,
      ...options,
      details: { ...target, origin, ...options.details },
    });
    this.origin = origin;
  }
}

/**
 * The peer's durable consumer (or the origin's whole stream) does not exist
 * (`replication.peer-consumer-missing`): the peer was unlinked, or the origin has not created it
 * yet. The feed keeps retrying, so a consumer created later is picked up.
 */
export class PeerConsumerMissingError extends NotFoundError {
  override name = 'PeerConsumerMissingError';

  constructor(target: OpsStreamTarget, options: GeorepErrorOptions = {}) {
    super('replication.peer-consumer-missing', `${describe(target)} does not exist`, {
      hint: 'link the region again (which creates its consumer), or stop this feed',
      ...options,
      details: { ...target, ...options.details },
    });
  }
}

function describe(target: OpsStreamTarget): string {
  return target.consumer === undefined
    ? `stream ${target.stream}`
    : `consumer ${target.consumer} of stream ${target.stream}`;
}
