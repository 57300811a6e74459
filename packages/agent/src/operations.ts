/**
 * Runs membership operations (link, unlink, force-unlink) requested through this agent. Requests
 * are validated at once (so the CLI gets an immediate, precise error), recorded in the ledger
 * (idempotent by client token), then executed asynchronously: votes from a majority of linked
 * regions, the link-state changes, the result. Forced changes skip the vote and are recorded as
 * forced, with who and why.
 */
import {
  ConflictError,
  GeorepError,
  NotFoundError,
  UsageError,
  makeLogger,
  serializeError,
  type Logger,
  type OperationView,
  type RegionState,
} from '@georep/core';
import {
  collectVotes,
  noQuorumError,
  resyncOf,
  setResync,
  validateClientToken,
  type Ballot,
  type Proposal,
} from '@georep/group';
import type { GroupPlane } from './group-plane.js';
import { waitDrained, type RegionStatusOf } from './drain.js';

/** A link or unlink request as the CLI sends it. */
export interface MembershipRequest {
  kind: 'link' | 'unlink';
  region: string;
  force?: boolean;
  yes?: boolean;
  resync?: boolean;
  reason?: string;
  clientToken?: string | null;
  /** `user@host` of the operator. */
  requestedBy: string;
}

/** What the runner needs from the agent. */
export interface RunnerContext {
  region: string;
  plane: GroupPlane;
  /** The health plane's view of a region (undefined if never heard of). */
  healthOf: (region: string) => RegionState | undefined;
  /** Asks the agent of `region` for its ballot (times out by rejecting). */
  askVote: (region: string, proposal: Proposal) => Promise<Ballot>;
  /** Asks a region's own agent for its status (replication backlogs); a graceful unlink drains. */
  regionStatus?: RegionStatusOf;
}

/** How long a graceful unlink waits for the backlogs to and from the region to drain. */
export const UNLINK_DRAIN_TIMEOUT_MS = 20_000;

/** See the module comment. */
export class OperationRunner {
  readonly #ctx: RunnerContext;
  readonly #log: Logger;
  readonly #running = new Set<Promise<void>>();

  constructor(context: RunnerContext) {
    this.#ctx = context;
    this.#log = makeLogger('operations');
  }

  /** Validates and records a request; execution continues in the background. */
  submit(request: MembershipRequest): OperationView {
    const clientToken =
      request.clientToken == null ? null : validateClientToken(request.clientToken);
    // A retried request (known token) returns its operation, or conflicts, whatever the state
    // is now: validating it again would fail because the first attempt already changed the state.
    const retried =
      clientToken !== null && this.#ctx.plane.document.operationByToken(clientToken) !== undefined;
    if (!retried) this.#validate(request);
    // A forced link is the recovery of a group left without any linked region (see #validate).
    const forced = request.force === true;
    const params = {
      region: request.region,
      force: forced,
      resync: request.kind === 'link' && request.resync === true,
      ...(forced ? { reason: request.reason ?? '' } : {}),
    };
    const { operation, created } = this.#ctx.plane.document.createOperation({
      kind: request.kind,
      params,
      clientToken,
      requestedVia: this.#ctx.region,
      requestedBy: request.requestedBy,
      forced: forced
        ? {
            by: `${request.requestedBy} via ${this.#ctx.region}`,
            reason: request.reason ?? '(no reason given)',
          }
        : null,
    });
    if (created) {
      const run = this.#execute(operation).finally(() => this.#running.delete(run));
      this.#running.add(run);
    }
    return created ? operation : (this.#ctx.plane.document.operation(operation.id) ?? operation);
  }

  /**
   * Operations this region was running when its agent stopped cannot resume (their votes and
   * steps were in memory): mark them failed so that nobody waits for them forever.
   */
  failInterrupted(resumable: (op: OperationView) => boolean = () => false): void {
    const doc = this.#ctx.plane.document;
    for (const op of doc.pendingOperations()) {
      if (op.requestedVia !== this.#ctx.region) continue;
      // A scheduled operation that has not started is kept: its owner picks it up again.
      if (op.status === 'pending' && resumable(op)) continue;
      // A link --resync is finished by the region's own agent, not by this one.
      if (resyncOf(doc, String(op.params.region))?.operationId === op.id) continue;
      doc.updateOperation(op.id, {
        status: 'failed',
        error: {
          code: 'operation.interrupted',
          message: `the agent of ${this.#ctx.region} restarted while the operation was ${op.status}`,
          hint: 'check the group state with georep group show, then repeat the request (with a new --client-token, if you used one)',
        },
      });
      this.#log.warn({ operation: op.id }, 'marked an interrupted operation as failed');
    }
  }

  /**
   * Records a task (an operation that is not a membership change, e.g. a snapshot export) and
   * runs `work` in the background; its result or error goes into the ledger. Idempotent by
   * client token like every operation.
   */
  submitTask(
    kind: string,
    params: Record<string, unknown>,
    request: { clientToken?: string | null; requestedBy: string },
    work: (operationId: string) => Promise<Record<string, unknown>>,
  ): OperationView {
    const { operation, created } = this.recordTask(kind, params, request);
    if (created) this.startTask(operation.id, work);
    return operation;
  }

  /**
   * Records a task without starting it (a scheduled one); {@link startTask} runs it later. A
   * retried request (same client token, same parameters) returns the recorded operation.
   */
  recordTask(
    kind: string,
    params: Record<string, unknown>,
    request: { clientToken?: string | null; requestedBy: string },
  ): { operation: OperationView; created: boolean } {
    const clientToken =
      request.clientToken == null ? null : validateClientToken(request.clientToken);
    const doc = this.#ctx.plane.document;
    const { operation, created } = doc.createOperation({
      kind,
      params,
      clientToken,
      requestedVia: this.#ctx.region,
      requestedBy: request.requestedBy,
    });
    return { operation: created ? operation : (doc.operation(operation.id) ?? operation), created };
  }

  /** Runs a recorded task in the background; its result or error goes into the ledger. */
  startTask(
    operationId: string,
    work: (operationId: string) => Promise<Record<string, unknown>>,
  ): void {
    const doc = this.#ctx.plane.document;
    const operation = { id: operationId };
    const run = (async () => {
      doc.updateOperation(operation.id, { status: 'running' });
      try {
        doc.updateOperation(operation.id, {
          status: 'succeeded',
          result: await work(operation.id),
        });
      } catch (err) {
        this.#fail(operation.id, err);
      }
    })().finally(() => this.#running.delete(run));
    this.#running.add(run);
  }

  /** Records a failed operation with its error code and hint. */
  #fail(operationId: string, err: unknown): void {
    const wire = serializeError(err);
    if (!(err instanceof GeorepError)) {
      this.#log.error(
        { operation: operationId, err: wire.message },
        'operation failed unexpectedly',
      );
    }
    this.#ctx.plane.document.updateOperation(operationId, {
      status: 'failed',
      error: {
        code: wire.code,
        message: wire.message,
        ...(wire.hint === undefined ? {} : { hint: wire.hint }),
      },
    });
  }

  /**
   * Operations recorded by a force-unlinked region's agent can never finish: that agent is gone,
   * and fenced if it returns. Mark them failed so that nobody waits for them.
   */
  #abandonOperationsOf(region: string): void {
    const doc = this.#ctx.plane.document;
    for (const op of doc.pendingOperations()) {
      if (op.requestedVia !== region) continue;
      doc.updateOperation(op.id, {
        status: 'failed',
        error: {
          code: 'operation.abandoned',
          message: `${region}, whose agent ran this operation, was force-unlinked`,
          hint: 'repeat the request through a linked region if it still applies',
        },
      });
    }
  }

  /**
   * Holds the vote of the linked regions on `kind` of `target` for an operation: resolves with the
   * ballots when a majority said yes and the group did not change meanwhile (same epoch, and
   * `changed()` returns null), else throws `vote.no-quorum` or `vote.stale`. This agent's grant is
   * released either way.
   */
  async vote(
    kind: string,
    target: string,
    operationId: string,
    changed: () => string | null = () => null,
  ): Promise<{ voter: string; yes: boolean }[]> {
    const { plane } = this.#ctx;
    const doc = plane.document;
    const proposal: Proposal = {
      operationId,
      kind,
      target,
      proposer: this.#ctx.region,
      epoch: doc.epoch,
    };
    try {
      const votes = await collectVotes(proposal, doc.linkedRegions(), (region, p) =>
        region === this.#ctx.region ? Promise.resolve(plane.vote(p)) : this.#ctx.askVote(region, p),
      );
      if (!votes.passed) throw noQuorumError(votes);
      // The vote took time: another change may have been merged meanwhile. Then this proposal was
      // based on an old state and must not be applied over it.
      const change =
        doc.epoch !== proposal.epoch ? `epoch ${proposal.epoch} → ${doc.epoch}` : changed();
      if (change !== null) {
        throw new ConflictError(
          'vote.stale',
          `the group changed while votes were collected (${change})`,
          { hint: 'check georep group show and repeat the request if it still applies' },
        );
      }
      return votes.ballots.map((b) => ({ voter: b.voter, yes: b.yes }));
    } finally {
      plane.voter.release(operationId);
    }
  }

  /** Waits for operations in flight (shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }

  #validate(request: MembershipRequest): void {
    const { plane } = this.#ctx;
    if (request.kind === 'link' && request.force === true) {
      this.#validateRecovery(request);
      return;
    }
    if (plane.linkState !== 'linked') {
      throw new ConflictError(
        'group.not-linked',
        `the agent of ${this.#ctx.region} is ${plane.linkState ?? 'not a member'} and cannot change the group`,
        {
          hint: 'send the request to an agent of a linked region (--nats of another region)',
        },
      );
    }
    const target = plane.document.region(request.region);
    const health = this.#ctx.healthOf(request.region);
    if (request.kind === 'unlink') {
      if (target === undefined)
        throw unknownRegion(
          request.region,
          plane.document.regions().map((r) => r.name),
        );
      if (target.linkState !== 'linked' && target.linkState !== 'unlinking') {
        throw new ConflictError(
          'unlink.invalid-state',
          `${request.region} is ${target.linkState}; only a linked region can be unlinked`,
        );
      }
      if (request.force === true) {
        if (request.yes !== true) {
          throw new UsageError(
            'usage.confirmation-required',
            `force-unlinking ${request.region} needs --yes`,
            {
              hint: `a forced unlink skips the vote and fences ${request.region} when it returns; repeat with --force --yes --reason "..."`,
            },
          );
        }
        // Down means a majority of the live agents agree; one agent's suspicion is not enough.
        if (health !== 'down') {
          throw new ConflictError(
            'unlink.region-not-down',
            `${request.region} is ${health ?? 'unknown'} as seen from ${this.#ctx.region}; --force is for a region that is down`,
            {
              hint: `unlink it gracefully (without --force), or wait until georep status shows it down`,
            },
          );
        }
      } else if (health !== 'up') {
        throw new ConflictError(
          'unlink.region-not-up',
          `${request.region} is ${health ?? 'unknown'}: a graceful unlink needs it up (its backlog is drained both ways)`,
          {
            hint: `if it is gone for good: georep unlink ${request.region} --force --yes --reason "..."`,
          },
        );
      }
      const linked = plane.document.linkedRegions();
      if (linked.length === 1 && linked[0] === request.region) {
        throw new ConflictError(
          'unlink.last-region',
          `${request.region} is the last linked region of the group`,
          {
            hint: 'a group needs at least one linked region',
          },
        );
      }
      return;
    }
    if (target === undefined) {
      if (health !== 'up') {
        throw unknownRegion(
          request.region,
          plane.document.regions().map((r) => r.name),
          'start the agent of the new region with this group, then link it',
        );
      }
      return;
    }
    if (target.linkState === 'linked')
      throw new ConflictError('link.already-linked', `${request.region} is already linked`);
    if (
      target.linkState === 'force-unlinked' &&
      (request.resync !== true || request.yes !== true)
    ) {
      throw new ConflictError(
        'link.resync-required',
        `${request.region} was force-unlinked: its data may have diverged and is not merged back`,
        {
          hint: `relink it with --resync --yes: its data is replaced by the group's (its divergent writes are reported, not merged)`,
        },
      );
    }
    if (request.resync === true && request.yes !== true) {
      throw new UsageError(
        'usage.confirmation-required',
        `--resync replaces the data of ${request.region} and needs --yes`,
      );
    }
  }

  /**
   * `link R --force`: the way out of a group with no linked region left, which two regions that
   * force-unlinked each other during a partition leave behind (each agent is then fenced, and no
   * vote can be held). The operator chooses the region whose data stands; the others rejoin it
   * with `link --resync`. Refused whenever a linked region exists: then a normal, voted link is
   * the way.
   */
  #validateRecovery(request: MembershipRequest): void {
    const doc = this.#ctx.plane.document;
    const linked = doc.linkedRegions();
    if (linked.length > 0) {
      throw new ConflictError(
        'link.force-not-needed',
        `${linked.join(', ')} ${linked.length === 1 ? 'is' : 'are'} linked: --force is only for a group with no linked region left`,
        { hint: `link ${request.region} without --force (a vote of the linked regions)` },
      );
    }
    const target = doc.region(request.region);
    if (target === undefined) {
      throw unknownRegion(
        request.region,
        doc.regions().map((r) => r.name),
      );
    }
    if (request.yes !== true) {
      throw new UsageError(
        'usage.confirmation-required',
        `linking ${request.region} by force makes its data the group's; it needs --yes`,
        { hint: `repeat with --force --yes --reason "..."` },
      );
    }
  }

  /**
   * A graceful unlink: while `target` is `unlinking` it still replicates both ways; this waits
   * until what it holds for every other linked region, and what they hold for it, is applied.
   * When that takes too long the region is linked again and the unlink fails: nothing is lost,
   * and the operator can move its traffic away first, or force-unlink it. Returns the linked
   * regions that were down and so not waited for.
   */
  async #drain(target: string, by: { region: string; operationId: string }): Promise<string[]> {
    const regionStatus = this.#ctx.regionStatus;
    if (regionStatus === undefined) return [];
    const doc = this.#ctx.plane.document;
    // Regions that are down cannot drain now; waiting for them would block the unlink for as long
    // as they are out. What the leaving region holds for them stays in its stream (reported).
    const linked = doc.linkedRegions().filter((r) => r !== target);
    const others = linked.filter((r) => this.#ctx.healthOf(r) === 'up');
    const left = await waitDrained({
      regionStatus,
      pairs: others.flatMap((o) => [[target, o] as const, [o, target] as const]),
      since: Date.now(),
      timeoutMs: UNLINK_DRAIN_TIMEOUT_MS,
    });
    if (left === '') return linked.filter((r) => !others.includes(r));
    doc.setLinkState(target, 'linked', by);
    throw new ConflictError(
      'unlink.not-drained',
      `${target} was not unlinked: its replication did not drain within ${UNLINK_DRAIN_TIMEOUT_MS / 1000} s (${left})`,
      {
        hint: `it stays linked; move its traffic away (georep failover) and repeat, or force-unlink it if it is gone (georep unlink ${target} --force --yes)`,
      },
    );
  }

  /** The region whose data a resync copies: this one when it is linked, else the first linked. */
  #resyncSource(target: string): string {
    const linked = this.#ctx.plane.document.linkedRegions().filter((r) => r !== target);
    const source = linked.includes(this.#ctx.region) ? this.#ctx.region : linked[0];
    if (source === undefined) {
      throw new ConflictError(
        'link.no-source',
        `no linked region has data to resync ${target} from`,
        { hint: 'link a region first (georep link R --force --yes when none is linked)' },
      );
    }
    return source;
  }

  async #execute(operation: OperationView): Promise<void> {
    const { plane } = this.#ctx;
    const doc = plane.document;
    const target = String(operation.params.region);
    doc.updateOperation(operation.id, { status: 'running' });
    try {
      const by = { region: this.#ctx.region, operationId: operation.id };
      if (operation.kind === 'link' && operation.params.force === true) {
        doc.setLinkState(target, 'linked', { ...by, forced: operation.forced });
        doc.updateOperation(operation.id, {
          status: 'succeeded',
          result: {
            region: target,
            linkState: 'linked',
            epoch: doc.epoch,
            forced: operation.forced,
            note: 'the group had no linked region; relink the others with --resync',
          },
        });
        return;
      }
      if (operation.kind === 'unlink' && operation.params.force === true) {
        doc.setLinkState(target, 'force-unlinked', { ...by, forced: operation.forced });
        this.#abandonOperationsOf(target);
        doc.updateOperation(operation.id, {
          status: 'succeeded',
          result: {
            region: target,
            linkState: 'force-unlinked',
            epoch: doc.epoch,
            forced: operation.forced,
          },
        });
        return;
      }
      const stateAtProposal = doc.region(target)?.linkState;
      const ballots = await this.vote(operation.kind, target, operation.id, () =>
        doc.region(target)?.linkState === stateAtProposal
          ? null
          : `${target} changed its link state`,
      );
      if (operation.kind === 'unlink') {
        doc.setLinkState(target, 'unlinking', by);
        const notDrained = await this.#drain(target, by);
        doc.setLinkState(target, 'unlinked', by);
        doc.updateOperation(operation.id, {
          status: 'succeeded',
          result: {
            region: target,
            linkState: 'unlinked',
            epoch: doc.epoch,
            votes: ballots,
            ...(notDrained.length > 0 ? { notDrained } : {}),
          },
        });
      } else {
        const resync = operation.params.resync === true;
        const previous = doc.region(target)?.linkState ?? 'unlinked';
        doc.setLinkState(target, 'linking', by);
        if (resync) {
          // The region's own agent replaces its data and finishes the operation (region-resync.ts).
          const from = this.#resyncSource(target);
          setResync(doc, target, { from, operationId: operation.id, previous });
          this.#log.info({ region: target, from }, 'link --resync handed to the region');
          return;
        }
        doc.setLinkState(target, 'linked', by);
        doc.updateOperation(operation.id, {
          status: 'succeeded',
          result: {
            region: target,
            linkState: 'linked',
            epoch: doc.epoch,
            votes: ballots,
            resync,
          },
        });
      }
    } catch (err) {
      this.#fail(operation.id, err);
    }
  }
}

function unknownRegion(region: string, known: string[], hint?: string): NotFoundError {
  return new NotFoundError('region.not-found', `region ${region} is not a member of the group`, {
    hint: hint ?? `members: ${known.join(', ')}`,
  });
}
