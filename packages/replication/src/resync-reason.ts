/**
 * Why a primary answered `PSYNC <replid> <offset>` with a full resync instead of `+CONTINUE`.
 *
 * The primary does not say; it only logs it. So capture reads `INFO replication` just before
 * sending PSYNC and applies the same tests as `masterTryPartialResynchronization` in Redis's
 * `replication.c`: the replication id must be the node's current one, or its previous one
 * (`master_replid2`) up to `second_repl_offset`; and the requested offset must be inside the
 * backlog. Whatever test fails names the reason.
 */
import type { InfoSections } from '@georep/redis';
import type { Position } from './position-store.js';

/**
 * Why a full resync happened:
 * - `first-sync`: capture had no saved position;
 * - `history-unknown`: the node never had the saved replication id (restarted without its data,
 *   or a different node/dataset);
 * - `history-diverged`: the node has the id as its previous history, but it switched history
 *   before the saved offset (the saved position has writes the node never saw);
 * - `no-backlog`: the node has no replication backlog (it had no replica since it started);
 * - `backlog-exceeded`: the saved offset is no longer in the backlog (capture was away longer
 *   than `repl-backlog-size` lasts);
 * - `unknown`: INFO was not available (ACL without `+info`) or did not explain it.
 */
export type FullResyncReason =
  | 'first-sync'
  | 'history-unknown'
  | 'history-diverged'
  | 'no-backlog'
  | 'backlog-exceeded'
  | 'unknown';

/** A reason and the figures behind it, as one sentence for logs. */
export interface FullResyncExplanation {
  reason: FullResyncReason;
  detail: string;
}

/**
 * Explains a full resync answer to a PSYNC from `requested` (null: `PSYNC ? -1`), given the
 * node's INFO replication read just before (undefined when it could not be read).
 */
export function explainFullResync(
  requested: Position | null,
  info: InfoSections | undefined,
): FullResyncExplanation {
  if (requested === null) {
    return { reason: 'first-sync', detail: 'no saved position: initial full sync' };
  }
  const r = info?.['replication'];
  if (r === undefined) {
    return { reason: 'unknown', detail: 'the node refused a partial resync (INFO unavailable)' };
  }
  const want = requested.offset + 1;
  const replid = r['master_replid'] ?? '';
  const replid2 = r['master_replid2'] ?? '';
  const second = Number(r['second_repl_offset'] ?? -1);
  if (requested.replid !== replid) {
    if (requested.replid !== replid2) {
      return {
        reason: 'history-unknown',
        detail: `the node does not know replication id ${requested.replid} (it has ${replid}, previously ${replid2})`,
      };
    }
    if (want > second) {
      return {
        reason: 'history-diverged',
        detail: `the node left history ${requested.replid} at offset ${second - 1}, before the saved offset ${requested.offset}`,
      };
    }
  }
  if (r['repl_backlog_active'] === '0') {
    return { reason: 'no-backlog', detail: 'the node has no replication backlog' };
  }
  const first = Number(r['repl_backlog_first_byte_offset'] ?? NaN);
  const histlen = Number(r['repl_backlog_histlen'] ?? NaN);
  if (want < first || want > first + histlen) {
    return {
      reason: 'backlog-exceeded',
      detail: `saved offset ${requested.offset} is outside the backlog (${first - 1}..${first + histlen - 1}); raise repl-backlog-size`,
    };
  }
  return { reason: 'unknown', detail: 'the node refused a partial resync for an unknown reason' };
}
