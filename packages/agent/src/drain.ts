/**
 * Waiting for replication backlogs to drain between regions: a failback waits for the failed-over
 * region and its stand-in, a graceful unlink for the leaving region and every other. The backlogs
 * come from each origin's own agent (its status report), which measures them about once a second.
 */
import type { StatusReport } from '@georep/core';

/** How long every backlog must stay empty before the wait trusts it. */
export const DRAIN_STABLE_MS = 2500;

/** Asks a region's own agent for its status report. */
export type RegionStatusOf = (region: string) => Promise<StatusReport>;

/**
 * What is left of the backlogs of `pairs` ([origin, peer]: what origin holds for peer), said in
 * words ('' when every one is known and empty), and whether any origin replicates at all (an
 * origin whose agent has replication off holds nothing).
 */
export async function backlogsLeft(
  regionStatus: RegionStatusOf,
  pairs: Array<readonly [string, string]>,
): Promise<{ left: string; replicating: boolean }> {
  const parts: string[] = [];
  let replicating = false;
  for (const [origin, peer] of pairs) {
    let backlog: { messages: number; bytes: number } | null = null;
    try {
      const report = await regionStatus(origin);
      const replication = report.regions.find((r) => r.name === origin)?.replication;
      if (replication?.enabled === false) continue;
      replicating = true;
      backlog = replication?.links.find((l) => l.peer === peer)?.backlog ?? null;
    } catch {
      replicating = true;
      backlog = null;
    }
    if (backlog === null) parts.push(`the backlog of ${origin} for ${peer} is unknown`);
    else if (backlog.messages > 0)
      parts.push(
        `${origin} holds ${backlog.messages} batches (${backlog.bytes} bytes) not yet applied in ${peer}`,
      );
  }
  return { left: parts.join('; '), replicating };
}

/**
 * Waits until every backlog of `pairs` has been seen empty for {@link DRAIN_STABLE_MS}, starting
 * at least that long after `since` (the change that lets the backlogs drain, which agents learn
 * about within a second: a single zero could predate it). Returns '' when drained, or what is
 * left once `timeoutMs` has passed.
 */
export async function waitDrained(options: {
  regionStatus: RegionStatusOf;
  pairs: Array<readonly [string, string]>;
  since: number;
  timeoutMs: number;
}): Promise<string> {
  const deadline = options.since + options.timeoutMs;
  let emptySince: number | null = null;
  for (;;) {
    const { left, replicating } = await backlogsLeft(options.regionStatus, options.pairs);
    if (!replicating) return '';
    const now = Date.now();
    emptySince = left === '' ? (emptySince ?? now) : null;
    if (
      emptySince !== null &&
      now - emptySince >= DRAIN_STABLE_MS &&
      now - options.since >= DRAIN_STABLE_MS
    )
      return '';
    if (left !== '' && now > deadline) return left;
    await new Promise((r) => setTimeout(r, 500));
  }
}
