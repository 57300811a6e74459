/**
 * A region's replication status summed over its shards: one link per peer, as a user reads it
 * first ("how far behind is us-east?"), beside the per-shard detail.
 */
import type { ReplicationLink, ReplicationStatus } from '@georep/core';
import type { PeerBacklog } from '@georep/replication';
import { emptyLink } from './apply-feed.js';

/**
 * One peer's link over the shards both regions have: counters add up; lag, backlog age and
 * growth are the worst shard's; the applied tag is the oldest shard's, null while a shard has
 * applied nothing (that is the region's watermark for the peer); the first error is shown with
 * its shard. `unpaired` describes the shards only one side has.
 */
export function combineLinks(
  peer: string,
  shards: Array<{ shard: string; link: ReplicationLink }>,
  unpaired: string | null,
): ReplicationLink {
  const extra = unpaired === null ? {} : { unpairedShards: unpaired };
  const out: ReplicationLink = { ...emptyLink(peer), ...extra };
  if (shards.length === 1) return { ...shards[0]!.link, ...extra };
  let tag: string | null | undefined;
  for (const { shard, link } of shards) {
    out.appliedBatches += link.appliedBatches;
    out.appliedOps += link.appliedOps;
    out.lagMs = maxOf(out.lagMs, link.lagMs);
    out.lastAppliedAt = maxOf(out.lastAppliedAt, link.lastAppliedAt);
    tag = tag === undefined ? link.appliedTag : minTag(tag, link.appliedTag);
    if (out.error === null && link.error !== null) out.error = `shard ${shard}: ${link.error}`;
    const b = link.backlog;
    if (b === null) continue;
    const sum = out.backlog ?? { ...b, messages: 0, bytes: 0, growthBytesPerSec: null };
    out.backlog = {
      messages: sum.messages + b.messages,
      bytes: sum.bytes + b.bytes,
      oldestAgeMs: maxOf(sum.oldestAgeMs, b.oldestAgeMs),
      lost: sum.lost || b.lost,
      growthBytesPerSec:
        b.growthBytesPerSec === null
          ? sum.growthBytesPerSec
          : (sum.growthBytesPerSec ?? 0) + b.growthBytesPerSec,
      fullInSec: minOf(sum.fullInSec, b.fullInSec),
      streamLimitBytes: Math.min(sum.streamLimitBytes, b.streamLimitBytes),
    };
  }
  out.appliedTag = tag ?? null;
  return out;
}

/** Capture counters of all shards added up (null when no shard captures). */
export function sumCaptures(
  captures: Array<ReplicationStatus['capture']>,
): ReplicationStatus['capture'] {
  const running = captures.filter((c) => c !== null);
  if (running.length === 0) return null;
  return running.reduce((a, c) => ({
    batches: a.batches + c.batches,
    ops: a.ops + c.ops,
    recordedOffset: running.length === 1 ? c.recordedOffset : -1,
    warnings: a.warnings + c.warnings,
    unconfirmed: (a.unconfirmed ?? 0) + (c.unconfirmed ?? 0),
  }));
}

/**
 * The backlog with its growth over the last minute and when the stream limit is reached at that
 * rate: the warning an operator needs before a down peer's backlog is dropped. `samples` keeps
 * the last minute's sizes per peer between calls.
 */
export function withForecast(
  samples: Map<string, Array<{ at: number; bytes: number }>>,
  peer: string,
  b: PeerBacklog,
): NonNullable<ReplicationLink['backlog']> {
  const now = Date.now();
  const recent = (samples.get(peer) ?? []).filter((x) => now - x.at <= 60_000);
  recent.push({ at: now, bytes: b.pendingBytes });
  samples.set(peer, recent);
  const first = recent[0]!;
  const spanSec = (now - first.at) / 1000;
  const growth = spanSec >= 5 ? (b.pendingBytes - first.bytes) / spanSec : null;
  const room = b.streamLimitBytes - b.streamBytes;
  return {
    messages: b.pendingMessages,
    bytes: b.pendingBytes,
    oldestAgeMs: b.oldestAgeMs,
    lost: b.lost,
    growthBytesPerSec: growth === null ? null : Math.round(growth),
    fullInSec: growth !== null && growth > 0 ? Math.max(0, Math.round(room / growth)) : null,
    streamLimitBytes: b.streamLimitBytes,
  };
}

/**
 * What a user must know when two regions' shards differ ('' when they match): e.g. "shard s2 of
 * eu-west has no counterpart in ap-south: not replicated between them; give both regions the
 * same shard names".
 */
export function unpairedShards(
  mine: string[],
  self: string,
  theirs: string[],
  peer: string,
): string {
  const onlyHere = mine.filter((s) => !theirs.includes(s));
  const onlyThere = theirs.filter((s) => !mine.includes(s));
  const parts = [
    ...(onlyHere.length > 0 ? [unpairedText(onlyHere, self, peer)] : []),
    ...(onlyThere.length > 0 ? [unpairedText(onlyThere, peer, self)] : []),
  ];
  return parts.length === 0
    ? ''
    : `${parts.join('; ')}: not replicated between them; give both regions the same shard names`;
}

/** "shard s2 of eu-west has no counterpart in ap-south" (plural for several shards). */
function unpairedText(shards: string[], owner: string, other: string): string {
  return shards.length === 1
    ? `shard ${shards[0]} of ${owner} has no counterpart in ${other}`
    : `shards ${shards.join(', ')} of ${owner} have no counterpart in ${other}`;
}

const maxOf = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.max(a, b);
const minOf = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : Math.min(a, b);
/** The older of two applied tags; null (nothing applied) is older than any. */
const minTag = (a: string | null, b: string | null): string | null =>
  a === null || b === null ? null : a < b ? a : b;
