/**
 * Waiting for replication backlogs to drain between regions: a failback waits for the failed-over
 * region and its stand-in, a graceful unlink for the leaving region and every other. The backlogs
 * come from each origin's own agent (its status report), which measures them about once a second.
 */
import type { ReplicationStatus, StatusReport } from '@georep/core';

/** How long after the change a zero backlog is trusted (agents learn of it, backlogs are re-measured). */
export const DRAIN_STABLE_MS = 2500;

/** Asks a region's own agent for its status report. */
export type RegionStatusOf = (region: string) => Promise<StatusReport>;

/** The replication part of `origin`'s own report, or null when its agent did not answer. */
async function replicationOf(
  regionStatus: RegionStatusOf,
  origin: string,
): Promise<ReplicationStatus | undefined | null> {
  try {
    return (await regionStatus(origin)).regions.find((r) => r.name === origin)?.replication;
  } catch {
    return null;
  }
}

/** One pair's backlog in words ('' when known and empty); null when its origin does not replicate. */
function pairLeft(
  replication: ReplicationStatus | undefined | null,
  [origin, peer]: readonly [string, string],
): string | null {
  if (replication?.enabled === false) return null;
  const backlog = replication?.links.find((l) => l.peer === peer)?.backlog ?? null;
  if (backlog === null) return `the backlog of ${origin} for ${peer} is unknown`;
  if (backlog.messages > 0)
    return `${origin} holds ${backlog.messages} batches (${backlog.bytes} bytes) not yet applied in ${peer}`;
  return '';
}

/**
 * Waits until every backlog of `pairs` ([origin, peer]: what origin holds for peer) has been seen
 * empty at least {@link DRAIN_STABLE_MS} after `since` (the change that lets the backlogs drain,
 * which agents learn about within a second, and backlogs are measured about once a second: an
 * earlier zero could predate it). An empty backlog then means everything its origin published
 * before was applied. Pairs are judged one by one: a region that goes on writing, or publishes
 * an idle mark, shows a batch now and then, which must not restart the wait of the others.
 * Returns '' when drained, or what is left once `timeoutMs` has passed.
 */
export async function waitDrained(options: {
  regionStatus: RegionStatusOf;
  pairs: Array<readonly [string, string]>;
  since: number;
  timeoutMs: number;
}): Promise<string> {
  const deadline = options.since + options.timeoutMs;
  const open = new Set(options.pairs);
  for (;;) {
    const now = Date.now();
    const lefts: string[] = [];
    // One status request per origin and round, however many pairs it is in.
    const origins = new Map<string, Promise<ReplicationStatus | undefined | null>>();
    for (const [origin] of open) {
      if (!origins.has(origin)) origins.set(origin, replicationOf(options.regionStatus, origin));
    }
    for (const pair of [...open]) {
      const left = pairLeft(await origins.get(pair[0])!, pair);
      if (left === null || (left === '' && now - options.since >= DRAIN_STABLE_MS))
        open.delete(pair);
      else if (left !== '') lefts.push(left);
    }
    if (open.size === 0) return '';
    if (Date.now() > deadline) return lefts.join('; ') || 'the backlogs were not seen empty';
    await new Promise((r) => setTimeout(r, 500));
  }
}
