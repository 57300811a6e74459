/**
 * The health plane's judgement of every region, as seen by one agent. A region is `suspect` when
 * this agent has not heard its heartbeat for `downAfterMs`, and `down` when a majority of live
 * agents (those this agent hears, itself included) report it suspect: Sentinel's SDOWN and
 * ODOWN at region level. Pure logic over heartbeats and a clock, so it is unit-tested without
 * servers.
 */
import type { Heartbeat, NodeSample, RegionState, RegionStatus, StatusReport } from '@georep/core';

interface Seen {
  heartbeat: Heartbeat;
  /** Local monotonic time of receipt. */
  receivedAt: number;
}

/** Options of {@link RegionTracker}. */
export interface RegionTrackerOptions {
  group: string;
  /** The region of the agent that owns this tracker. */
  self: string;
  /** Regions expected in the group, even before their first heartbeat. */
  expected: readonly string[];
  downAfterMs: number;
  /** Monotonic milliseconds (injectable for tests). */
  now?: () => number;
}

/** Tracks heartbeats and derives region states; see the module comment. */
export class RegionTracker {
  readonly #opts: RegionTrackerOptions;
  readonly #now: () => number;
  readonly #seen = new Map<string, Seen>();
  readonly #known: Set<string>;
  #localNodes: NodeSample[] = [];
  #localAgent: Heartbeat['agent'] | null = null;

  constructor(options: RegionTrackerOptions) {
    this.#opts = options;
    this.#now = options.now ?? (() => performance.now());
    this.#known = new Set([options.self, ...options.expected]);
  }

  /** Adds regions that are expected (members of the group document) even if never heard. */
  expect(regions: Iterable<string>): void {
    for (const region of regions) this.#known.add(region);
  }

  /** Every region this agent knows of, sorted. */
  get regions(): string[] {
    return [...this.#known].sort();
  }

  /** Records a heartbeat received from another agent (or this one's own echo, ignored). */
  observe(heartbeat: Heartbeat): void {
    if (heartbeat.region === this.#opts.self) return;
    this.#known.add(heartbeat.region);
    const previous = this.#seen.get(heartbeat.region);
    // A restarted agent starts its sequence again; only drop reordered beats of the same run.
    if (
      previous !== undefined &&
      previous.heartbeat.agent.id === heartbeat.agent.id &&
      previous.heartbeat.seq >= heartbeat.seq
    ) {
      return;
    }
    this.#seen.set(heartbeat.region, { heartbeat, receivedAt: this.#now() });
  }

  /** Records this agent's own latest samples and identity. */
  setLocal(nodes: NodeSample[], agent: Heartbeat['agent']): void {
    this.#localNodes = nodes;
    this.#localAgent = agent;
  }

  /** This agent's own view: `up` or `suspect` for each known region (itself always `up`). */
  localView(): Record<string, 'up' | 'suspect'> {
    const now = this.#now();
    const view: Record<string, 'up' | 'suspect'> = {};
    for (const region of this.regions) {
      if (region === this.#opts.self) {
        view[region] = 'up';
        continue;
      }
      // A region never heard from is not up, whatever the time since start.
      const seen = this.#seen.get(region);
      view[region] =
        seen !== undefined && now - seen.receivedAt <= this.#opts.downAfterMs ? 'up' : 'suspect';
    }
    return view;
  }

  /** The state of every region, with who agrees. */
  states(): Map<string, { state: RegionState; seenUpBy: string[]; seenSuspectBy: string[] }> {
    const local = this.localView();
    const live = Object.entries(local)
      .filter(([, v]) => v === 'up')
      .map(([region]) => region);
    const viewOf = (agentRegion: string): Record<string, 'up' | 'suspect'> | undefined =>
      agentRegion === this.#opts.self ? local : this.#seen.get(agentRegion)?.heartbeat.view;
    const out = new Map<
      string,
      { state: RegionState; seenUpBy: string[]; seenSuspectBy: string[] }
    >();
    for (const region of this.regions) {
      const seenUpBy: string[] = [];
      const seenSuspectBy: string[] = [];
      for (const agent of live) {
        const opinion = viewOf(agent)?.[region];
        if (opinion === 'up') seenUpBy.push(agent);
        else if (opinion === 'suspect') seenSuspectBy.push(agent);
      }
      let state: RegionState = local[region] ?? 'suspect';
      if (state === 'suspect' && seenSuspectBy.length * 2 > live.length) state = 'down';
      out.set(region, { state, seenUpBy, seenSuspectBy });
    }
    return out;
  }

  /**
   * The nodes of another region as its last heartbeat described them. When the region is not up
   * that description is stale, so every node is shown as not up, with the age of the knowledge.
   */
  #remoteNodes(seen: Seen | undefined, state: RegionState, now: number): NodeSample[] {
    if (seen === undefined) return [];
    if (state === 'up') return seen.heartbeat.nodes;
    const age = Math.round((now - seen.receivedAt) / 1000);
    return seen.heartbeat.nodes.map((n) => ({
      id: n.id,
      host: n.host,
      port: n.port,
      ...(n.shard === undefined ? {} : { shard: n.shard }),
      role: n.role,
      up: false,
      error: `region not reachable: last heartbeat ${age}s ago`,
      sampledAt: n.sampledAt,
    }));
  }

  /** The report served to `georep status`. */
  report(answeredBy: string): StatusReport {
    const now = this.#now();
    const regions: RegionStatus[] = [];
    for (const [name, judged] of this.states()) {
      const isSelf = name === this.#opts.self;
      const seen = this.#seen.get(name);
      const nodes = isSelf ? this.#localNodes : this.#remoteNodes(seen, judged.state, now);
      const primary = nodes.find((n) => n.role === 'primary' && n.up) ?? null;
      regions.push({
        name,
        state: judged.state,
        linkState: null,
        heartbeatAgeMs: isSelf ? 0 : seen === undefined ? null : Math.round(now - seen.receivedAt),
        seenUpBy: judged.seenUpBy,
        seenSuspectBy: judged.seenSuspectBy,
        primary: primary?.id ?? null,
        nodes,
        agent: isSelf ? this.#localAgent : (seen?.heartbeat.agent ?? null),
        ...(isSelf
          ? {}
          : {
              activity: seen?.heartbeat.activity ?? null,
              sentinel: seen?.heartbeat.sentinel ?? null,
            }),
      });
    }
    return {
      v: 1,
      group: this.#opts.group,
      answeredBy,
      generatedAt: Date.now(),
      downAfterMs: this.#opts.downAfterMs,
      regions,
    };
  }
}
