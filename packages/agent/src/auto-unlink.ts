/**
 * The optional policy `replication.autoForceUnlinkAfterMs`: a linked region that has been down
 * that long is force-unlinked automatically, as an operator would with `georep unlink R --force`,
 * so that the backlog the other regions hold for it stops growing before it fills their streams.
 *
 * Only the side of a partition that holds a majority of the linked regions acts: an agent that sees
 * fewer than a majority up (itself included) never unlinks anyone, so a cut-off region cannot
 * unlink the rest of the group. On the majority side one agent acts, the one of the alphabetically
 * first region that is up, so that the regions do not race. The change is recorded as forced, with
 * the policy as its reason, and the returning region is fenced like after any forced unlink.
 */
import { makeLogger, type AgentConfig, type Logger, type StatusReport } from '@georep/core';
import { quorumFor } from '@georep/group';
import type { GroupPlane } from './group-plane.js';
import type { OperationRunner } from './operations.js';

/** What the policy needs from the agent. */
export interface AutoUnlinkContext {
  config: AgentConfig;
  plane: GroupPlane;
  runner: OperationRunner;
  report: () => StatusReport;
}

/** Who the ledger says asked for an automatic unlink. */
export const AUTO_UNLINK_REQUESTER = 'georep-agent (replication.autoForceUnlinkAfterMs)';

/** See the module comment. */
export class AutoUnlinkPolicy {
  readonly #ctx: AutoUnlinkContext;
  readonly #log: Logger;
  /** region → when this agent first saw it down in the current outage. */
  readonly #downSince = new Map<string, number>();
  readonly #submitted = new Set<string>();

  constructor(context: AutoUnlinkContext) {
    this.#ctx = context;
    this.#log = makeLogger('auto-unlink');
  }

  /** Looks at every linked region once. Never throws. */
  check(now = Date.now()): void {
    const afterMs = this.#ctx.config.replication.autoForceUnlinkAfterMs;
    const { plane } = this.#ctx;
    if (afterMs === null || plane.linkState !== 'linked' || plane.fenced) return;
    const self = this.#ctx.config.region;
    const states = new Map(this.#ctx.report().regions.map((r) => [r.name, r.state]));
    const linked = plane.document.linkedRegions();
    for (const region of [...this.#submitted]) {
      if (!linked.includes(region)) this.#submitted.delete(region);
    }
    const up = linked.filter((r) => r === self || states.get(r) === 'up').sort();
    // The minority side of a partition sees the others down too: it must never act.
    if (up.length < quorumFor(linked.length)) {
      this.#downSince.clear();
      return;
    }
    for (const region of linked) {
      if (region === self || states.get(region) !== 'down') {
        this.#downSince.delete(region);
        continue;
      }
      const since = this.#downSince.get(region) ?? now;
      this.#downSince.set(region, since);
      if (now - since < afterMs || up[0] !== self || this.#submitted.has(region)) continue;
      this.#submitted.add(region);
      try {
        const op = this.#ctx.runner.submit({
          kind: 'unlink',
          region,
          force: true,
          yes: true,
          reason: `automatic: down for ${Math.round((now - since) / 1000)} s (replication.autoForceUnlinkAfterMs is ${afterMs} ms)`,
          requestedBy: AUTO_UNLINK_REQUESTER,
        });
        this.#log.warn(
          { region, downForMs: now - since, operation: op.id },
          'region down past the policy: force-unlinking it',
        );
      } catch (err) {
        this.#submitted.delete(region);
        this.#log.warn({ region, err: (err as Error).message }, 'automatic force-unlink refused');
      }
    }
  }
}
