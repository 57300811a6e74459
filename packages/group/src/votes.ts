/**
 * Votes for changes that must never split-brain (link, unlink, anything that bumps the epoch).
 * The proposer needs yes votes from a strict majority of the linked regions' agents, itself
 * included; a minority side of a partition therefore cannot change the majority's membership.
 * Each voter grants at most one change at a time (see {@link Voter}), so two concurrent proposals
 * cannot both win.
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

/** A granted vote that is not finished yet. */
export interface Grant {
  operationId: string;
  target: string;
  until: number;
}

/** Where a voter keeps its grant across restarts (a file in the agent's data directory). */
export interface GrantStore {
  load(): Grant | null;
  save(grant: Grant | null): void;
}

/**
 * Decides this agent's vote. A voter grants **one** membership change at a time for the whole
 * group (like a Paxos promise): two concurrent proposals, even about different regions, cannot
 * both collect a majority, because every majority shares a voter. The grant ends when the voter
 * sees the operation finished in its document, or after `leaseMs`; it is persisted, so a
 * restarted voter does not grant a second change while the first is still running.
 */
export class Voter {
  readonly region: string;
  readonly #leaseMs: number;
  readonly #now: () => number;
  readonly #store: GrantStore | null;
  #grant: Grant | null;

  constructor(
    region: string,
    options: { leaseMs?: number; now?: () => number; store?: GrantStore } = {},
  ) {
    this.region = region;
    this.#leaseMs = options.leaseMs ?? 15_000;
    this.#now = options.now ?? Date.now;
    this.#store = options.store ?? null;
    this.#grant = this.#store?.load() ?? null;
  }

  /**
   * Votes on `proposal` given this agent's state: its group epoch, whether its own region and
   * the proposer's are linked in its document (a fenced or unlinked region has no vote and
   * cannot propose), and which operations it has seen finished.
   */
  vote(
    proposal: Proposal,
    state: {
      epoch: number;
      selfLinked: boolean;
      proposerLinked?: boolean;
      finished?: (operationId: string) => boolean;
    },
  ): Ballot {
    const no = (reason: string): Ballot => ({ voter: this.region, yes: false, reason });
    if (!state.selfLinked) return no(`${this.region} is not linked and has no vote`);
    if (state.proposerLinked === false)
      return no(`${proposal.proposer} is not linked in the document of ${this.region}`);
    if (state.epoch > proposal.epoch) {
      return no(
        `proposal is based on epoch ${proposal.epoch}; ${this.region} has seen epoch ${state.epoch}`,
      );
    }
    const now = this.#now();
    const grant = this.#grant;
    const held =
      grant !== null && grant.until > now && state.finished?.(grant.operationId) !== true;
    if (held && grant.operationId !== proposal.operationId) {
      return no(
        `${this.region} already voted for operation ${grant.operationId} on ${grant.target}, not finished yet`,
      );
    }
    this.#set({
      operationId: proposal.operationId,
      target: proposal.target,
      until: now + this.#leaseMs,
    });
    return { voter: this.region, yes: true, reason: 'ok' };
  }

  /** Releases the grant once the operation finished. */
  release(operationId: string): void {
    if (this.#grant?.operationId === operationId) this.#set(null);
  }

  #set(grant: Grant | null): void {
    this.#grant = grant;
    this.#store?.save(grant);
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
