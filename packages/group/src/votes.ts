/**
 * Votes for changes that must never split-brain (link, unlink, anything that bumps the epoch).
 * The proposer needs yes votes from a strict majority of the linked regions' agents, itself
 * included; a minority side of a partition therefore cannot change the majority's membership.
 * Each voter grants at most one change per target region at a time (a lease that ends when the
 * operation is finished in the voter's document, or after `leaseMs`), so two concurrent proposals
 * about one region cannot both win.
 */
import { ConflictError } from '@georep/core';

/** What is being voted on. */
export interface Proposal {
  operationId: string;
  kind: string;
  /** The region whose membership changes. */
  target: string;
  proposer: string;
  /** The proposer's group epoch: a voter that has seen a later epoch says no. */
  epoch: number;
}

/** A voter's answer. */
export interface Ballot {
  voter: string;
  yes: boolean;
  reason: string;
}

/** How many yes votes `linked` voters need: a strict majority. */
export function quorumFor(linkedCount: number): number {
  return Math.floor(linkedCount / 2) + 1;
}

/** Decides this agent's vote and keeps the per-target leases. */
export class Voter {
  readonly region: string;
  readonly #leaseMs: number;
  readonly #leases = new Map<string, { operationId: string; until: number }>();
  readonly #now: () => number;

  constructor(region: string, options: { leaseMs?: number; now?: () => number } = {}) {
    this.region = region;
    this.#leaseMs = options.leaseMs ?? 15_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Votes on `proposal` given this agent's state: its group epoch and whether its own region is
   * linked (a fenced or unlinked region has no vote).
   */
  vote(
    proposal: Proposal,
    state: { epoch: number; selfLinked: boolean; finished?: (operationId: string) => boolean },
  ): Ballot {
    const no = (reason: string): Ballot => ({ voter: this.region, yes: false, reason });
    if (!state.selfLinked) return no(`${this.region} is not linked and has no vote`);
    if (state.epoch > proposal.epoch)
      return no(
        `proposal is based on epoch ${proposal.epoch}; ${this.region} has seen epoch ${state.epoch}`,
      );
    const now = this.#now();
    const lease = this.#leases.get(proposal.target);
    // A lease ends when it expires or when its operation is seen finished in the document.
    const held =
      lease !== undefined && lease.until > now && state.finished?.(lease.operationId) !== true;
    if (held && lease.operationId !== proposal.operationId) {
      return no(
        `${this.region} already voted for operation ${lease.operationId} on ${proposal.target}`,
      );
    }
    this.#leases.set(proposal.target, {
      operationId: proposal.operationId,
      until: now + this.#leaseMs,
    });
    return { voter: this.region, yes: true, reason: 'ok' };
  }

  /** Releases the lease once the operation finished. */
  release(operationId: string): void {
    for (const [target, lease] of this.#leases)
      if (lease.operationId === operationId) this.#leases.delete(target);
  }
}

/** The outcome of collecting ballots. */
export interface VoteResult {
  quorum: number;
  electorate: string[];
  ballots: Ballot[];
  passed: boolean;
}

/**
 * Asks every region of `electorate` (the proposer's own ballot is cast locally through `ask` too)
 * and counts. `ask` resolves to a ballot or rejects/times out (counted as no answer).
 */
export async function collectVotes(
  proposal: Proposal,
  electorate: readonly string[],
  ask: (region: string, proposal: Proposal) => Promise<Ballot>,
): Promise<VoteResult> {
  const quorum = quorumFor(electorate.length);
  const settled = await Promise.allSettled(electorate.map((region) => ask(region, proposal)));
  const ballots = settled.map((s, i): Ballot =>
    s.status === 'fulfilled'
      ? s.value
      : { voter: electorate[i] ?? '?', yes: false, reason: 'no answer' },
  );
  const yes = ballots.filter((b) => b.yes).length;
  return { quorum, electorate: [...electorate], ballots, passed: yes >= quorum };
}

/** The error of a vote that did not pass. */
export function noQuorumError(result: VoteResult): ConflictError {
  const yes = result.ballots.filter((b) => b.yes).map((b) => b.voter);
  const refused = result.ballots.filter((b) => !b.yes).map((b) => `${b.voter} (${b.reason})`);
  return new ConflictError(
    'vote.no-quorum',
    `not enough yes votes: ${yes.length} of ${result.quorum} needed (${result.electorate.length} linked regions); yes: ${yes.join(', ') || 'none'}; no: ${refused.join(', ') || 'none'}`,
    {
      hint: 'a majority of linked regions must be reachable; if the others are really gone, repeat with --force --yes --reason "..."',
      details: { ...result },
    },
  );
}
