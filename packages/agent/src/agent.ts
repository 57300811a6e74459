/**
 * The region agent: samples its Redis nodes every `intervalMs`, publishes a heartbeat, listens to
 * every other region's heartbeat, derives region states, and serves them over a NATS service
 * endpoint and HTTP. It keeps running through NATS and Redis outages (clients reconnect on their
 * own) and drops bad messages instead of failing.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Server } from 'node:http';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { Svcm, type Service } from '@nats-io/services';
import {
  NotFoundError,
  SERVICE_NAME,
  configuredNodes,
  groupSubjects,
  makeLogger,
  serializeError,
  type AgentConfig,
  type ApiReply,
  type GroupSubjects,
  type Heartbeat,
  type Logger,
  type NodeSample,
  type RegionActivity,
  type RegionState,
  type StatusReport,
} from '@georep/core';
import type { Ballot, Proposal } from '@georep/group';
import { GroupPlane } from './group-plane.js';
import { decodeHeartbeat } from './heartbeat.js';
import { startHttpServer, type HealthDocument } from './http-server.js';
import { createMetrics, type AgentMetrics } from './metrics.js';
import { connectNats } from './nats-connection.js';
import { NodeSampler } from './node-sampler.js';
import {
  parseMembershipRequest,
  parseProposal,
  parseRegionalFailoverRequest,
  parseSwitchoverRequest,
  requestedByOf,
} from './api-requests.js';
import { RegionalFailover } from './regional-failover.js';
import { WriteFence } from './write-fence.js';
import { AutoFailover } from './auto-failover.js';
import { AutoUnlinkPolicy } from './auto-unlink.js';
import { SwitchoverPlane, isScheduledSwitchover } from './switchover.js';
import { SentinelEndpoint } from './sentinel-endpoint.js';
import { makeSentinelView } from './sentinel-view.js';
import { cancelOperation, routedTo } from '@georep/group';
import { OperationRunner } from './operations.js';
import { ReplicationPlane } from './replication-plane.js';
import { RegionResync } from './region-resync.js';
import { SnapshotPlane } from './snapshot-plane.js';
import { ScheduleRunner } from './schedule-runner.js';
import { ScheduleLeases } from './schedule-lease.js';
import { SCHEDULE_API_VERBS, scheduleApi } from './schedule-api.js';
import { SNAPSHOT_API_VERBS, snapshotApi } from './snapshot-api.js';
import { RegionTracker } from './region-tracker.js';
import { AGENT_VERSION } from './version.js';

/** Verbs of the agent API (see docs/architecture.md). */
const API_VERBS = [
  'group.show',
  'op.submit',
  'op.get',
  'history',
  ...SNAPSHOT_API_VERBS,
  'switchover',
  'op.cancel',
  ...SCHEDULE_API_VERBS,
  'failover',
  'failback',
];

/** How often the agent re-evaluates its view between heartbeats, to report changes promptly. */
const VIEW_CHECK_MS = 200;
/** How often replication is brought in line with the group document's membership. */
const REPLICATION_RECONCILE_MS = 1000;
/** At most one warning per subject per this many ms about dropped messages. */
const BAD_MESSAGE_LOG_INTERVAL_MS = 10_000;

/** A running agent; create with {@link Agent.start}. */
export class Agent {
  readonly config: AgentConfig;
  readonly subjects: GroupSubjects;
  readonly identity: Heartbeat['agent'];
  readonly metrics: AgentMetrics;
  readonly #log: Logger;
  readonly #tracker: RegionTracker;
  readonly #sampler: NodeSampler;
  readonly plane: GroupPlane;
  readonly #runner: OperationRunner;
  readonly #snapshots: SnapshotPlane;
  /** Snapshot schedules of this region (see schedule-runner.ts). */
  readonly schedules: ScheduleRunner;
  readonly replication: ReplicationPlane;
  /** The last heartbeat of another agent of this region (see {@link #standby}). */
  #twin: { agent: Heartbeat['agent']; at: number } | null = null;
  readonly #resync: RegionResync;
  readonly switchover: SwitchoverPlane;
  readonly autoFailover: AutoFailover;
  readonly regionalFailover: RegionalFailover;
  readonly #fence: WriteFence;
  readonly #autoUnlink: AutoUnlinkPolicy;
  #tickAgain = false;
  #sentinel: SentinelEndpoint | null = null;
  /** The region's lease bucket (schedule slots, failover decisions), once NATS is connected. */
  #leases: ScheduleLeases | null = null;
  readonly #peerAgents = new Map<string, string>();
  #nc: NatsConnection | null = null;
  #service: Service | null = null;
  #subscription: Subscription | null = null;
  #activeStatus: Subscription | null = null;
  #http: { server: Server; port: number } | null = null;
  #timers: NodeJS.Timeout[] = [];
  #seq = 0;
  #ticking = false;
  #stopped = false;
  #lastPublishedView = '';
  #lastStates = new Map<string, RegionState>();
  #lastBadLog = new Map<string, number>();
  #connecting: Promise<void> | null = null;

  private constructor(config: AgentConfig) {
    this.config = config;
    this.subjects = groupSubjects(config.group);
    this.identity = {
      // The nonce tells restarts apart even when host and pid repeat (a container's PID 1).
      id: `${config.region}/${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`,
      version: AGENT_VERSION,
      startedAt: Date.now(),
    };
    this.#log = makeLogger('agent');
    this.#tracker = new RegionTracker({
      group: config.group,
      self: config.region,
      expected: config.regions,
      downAfterMs: config.health.downAfterMs,
    });
    this.#sampler = new NodeSampler(configuredNodes(config), config.redis);
    this.plane = new GroupPlane({
      group: config.group,
      region: config.region,
      founders: config.regions,
      dataDir: config.dataDir,
      subjects: this.subjects,
    });
    this.#tracker.expect(this.plane.document.regions().map((r) => r.name));
    this.#runner = new OperationRunner({
      region: config.region,
      plane: this.plane,
      healthOf: (region) => this.report().regions.find((r) => r.name === region)?.state,
      askVote: (region, proposal) => this.#askVote(region, proposal),
      regionStatus: (region) => this.#regionStatus(region),
    });
    try {
      this.#runner.failInterrupted(isScheduledSwitchover);
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'could not mark interrupted operations');
    }
    this.#snapshots = new SnapshotPlane(
      config,
      this.plane,
      () => this.report().regions.find((r) => r.name === config.region)?.nodes ?? [],
    );
    this.switchover = new SwitchoverPlane({
      config,
      plane: this.plane,
      runner: this.#runner,
      samples: () =>
        this.#tracker.report(config.region).regions.find((r) => r.name === config.region)?.nodes ??
        [],
      onTopologyChange: () => this.#topologyChanged(),
    });
    this.autoFailover = new AutoFailover({
      config,
      plane: this.plane,
      switchover: this.switchover,
      onTopologyChange: () => this.#topologyChanged(),
      // A failed claim is read as "lease store unreachable" by the failover (it acts alone).
      claim: async (key) =>
        this.#leases === null || !this.natsConnected
          ? null
          : this.#leases.claim(key, { agent: this.identity.id }),
      release: async (key) => {
        await this.#leases?.release(key);
      },
      onFailover: (event) => this.metrics.failovers.inc({ shard: event.shard }),
    });
    this.regionalFailover = new RegionalFailover({
      config,
      plane: this.plane,
      runner: this.#runner,
      healthOf: (region) => this.report().regions.find((r) => r.name === region)?.state,
      regionStatus: (region) => this.#regionStatus(region),
      report: () => this.report(),
      onRoutingChange: () => this.#topologyChanged(),
    });
    this.#fence = new WriteFence(config, this.plane, () => this.switchover.shards());
    this.#autoUnlink = new AutoUnlinkPolicy({
      config,
      plane: this.plane,
      runner: this.#runner,
      report: () => this.report(),
    });
    // Replication of each shard follows that shard's legitimate primary.
    // A shard's legitimate primary while it is up as primary.
    const upPrimary = (shard: string): NodeSample | undefined => {
      const primary = this.switchover.shards().find((s) => s.shard === shard)?.primary;
      return primary?.up === true && primary.role === 'primary' ? primary : undefined;
    };
    this.replication = new ReplicationPlane(config, this.plane, upPrimary, () => this.#standby());
    this.#resync = new RegionResync({
      config,
      plane: this.plane,
      replication: this.replication,
      subjects: this.subjects,
      nc: () => this.#nc,
      report: () => this.report(),
      primary: upPrimary,
      keep: async (node, name, operationId) => {
        await this.#snapshots.export({ name }, node, operationId);
      },
    });
    this.metrics = createMetrics(() => this.report(), {
      group: config.group,
      region: config.region,
    });
    this.schedules = new ScheduleRunner({
      config,
      plane: this.plane,
      runner: this.#runner,
      snapshots: this.#snapshots,
      agentId: this.identity.id,
      registry: this.metrics.registry,
      assertNotBusy: (what) => this.switchover.assertNotBusy(what),
    });
  }

  /**
   * Starts the agent. HTTP comes up first (so `/healthz` can say what is missing), the health loop
   * runs from the start, and NATS is connected in the background, retrying until it answers.
   */
  static async start(config: AgentConfig): Promise<Agent> {
    const agent = new Agent(config);
    if (config.http !== false) {
      agent.#http = await startHttpServer(
        config.http.host,
        config.http.port,
        () => agent.health(),
        agent.metrics,
      );
    }
    await agent.#startSentinel();
    agent.#timers.push(setInterval(() => void agent.#tick(), config.health.intervalMs));
    agent.#timers.push(
      setInterval(() => agent.#guard('view check', () => agent.#checkView()), VIEW_CHECK_MS),
    );
    agent.#connecting = agent.#connect();
    await agent.#tick();
    agent.#log.info(
      {
        agent: agent.identity,
        httpPort: agent.httpPort,
        nats: config.nats.servers,
        nodes: configuredNodes(config),
      },
      'agent started',
    );
    return agent;
  }

  /**
   * Serves the Sentinel-compatible endpoint. A taken port is logged, not fatal: health,
   * replication and the API keep running, and Sentinel clients use the other agents' endpoints.
   */
  async #startSentinel(): Promise<void> {
    const options = this.config.sentinel;
    if (options === false) return;
    try {
      this.#sentinel = await SentinelEndpoint.start({
        host: options.host,
        port: options.port,
        ...(options.password === undefined ? {} : { password: options.password }),
        view: makeSentinelView({
          report: () => this.report(),
          document: this.plane.document,
          seed: `${this.config.group}/${this.config.region}/${options.port}`,
          failover: this.config.failover,
        }),
      });
    } catch (err) {
      this.#log.error(
        { err: (err as Error).message, port: options.port },
        'the Sentinel-compatible endpoint is off: cannot listen',
      );
    }
  }

  /** Port of the Sentinel-compatible endpoint, or null when it is off. */
  get sentinelPort(): number | null {
    return this.#sentinel?.port ?? null;
  }

  /** Port of the HTTP endpoint, or null when it is off. */
  get httpPort(): number | null {
    return this.#http?.port ?? null;
  }

  /** True while connected to NATS. */
  get natsConnected(): boolean {
    return this.#nc !== null && !this.#nc.isClosed() && !this.#nc.isDraining() && this.#natsUp;
  }
  #natsUp = false;

  /** Waits until the first NATS connection is made (tests and `georep dev`). */
  async connected(): Promise<void> {
    await this.#connecting;
  }

  /**
   * True while another agent of this region, started before this one, is heard: that one
   * replicates the region and this one stands by (it takes over once the other has been silent
   * for `health.downAfterMs`). Also true for the first two heartbeat intervals after start, so
   * that an agent started next to a running one hears it before it captures anything.
   */
  #standby(): boolean {
    const now = Date.now();
    if (now - this.identity.startedAt < 2 * this.config.health.intervalMs) return true;
    const twin = this.#twin;
    if (twin === null || now - twin.at > this.config.health.downAfterMs) return false;
    const senior =
      twin.agent.startedAt < this.identity.startedAt ||
      (twin.agent.startedAt === this.identity.startedAt && twin.agent.id < this.identity.id);
    return senior;
  }

  /** What the region is busy with: a switchover or failover, else a resync. */
  #activity(): RegionActivity | null {
    return this.switchover.activity ?? this.#resync.activity;
  }

  /** The status report `georep status` shows, with each region's link state. */
  report(): StatusReport {
    const report = this.#tracker.report(this.config.region);
    for (const region of report.regions) {
      region.linkState = this.plane.document.region(region.name)?.linkState ?? null;
      region.routedTo = routedTo(this.plane.document, region.name);
      if (region.name === this.config.region) {
        region.replication = this.replication.status();
        region.activity = this.#activity();
        region.schedules = this.schedules.status();
        region.sentinel = this.#sentinel?.address ?? null;
      }
    }
    return report;
  }

  /** The `/healthz` document. */
  health(): HealthDocument {
    const report = this.report();
    const self = report.regions.find((r) => r.name === this.config.region);
    const redisReachable = self?.nodes.some((n) => n.up) ?? false;
    return {
      ok: this.natsConnected && redisReachable,
      group: this.config.group,
      region: this.config.region,
      natsConnected: this.natsConnected,
      redisReachable,
      linkState: this.plane.linkState,
      fenced: this.plane.fenced,
      regions: Object.fromEntries(report.regions.map((r) => [r.name, r.state])),
    };
  }

  async #connect(): Promise<void> {
    try {
      const nc = await connectNats(this.config.nats, {
        name: `georep-agent ${this.config.group}/${this.config.region}`,
        waitOnFirstConnect: true,
      });
      if (this.#stopped) {
        await nc.close();
        return;
      }
      this.#nc = nc;
      this.#natsUp = true;
      this.plane.attach(nc);
      this.#leases = new ScheduleLeases(nc, {
        group: this.config.group,
        region: this.config.region,
      });
      this.#snapshots.attach(nc);
      this.schedules.attach(nc);
      this.replication.attach(nc);
      this.#timers.push(
        setInterval(() => {
          void this.replication.reconcile();
          // A standby agent leaves the resync to the agent that replicates the region.
          if (!this.#standby()) this.#resync.check();
        }, REPLICATION_RECONCILE_MS),
      );
      void this.replication.reconcile();
      void this.#watchNats(nc);
      this.#subscription = nc.subscribe(this.subjects.allHeartbeats, {
        callback: (err, msg) => {
          if (err !== null) {
            this.#log.warn({ err: err.message }, 'heartbeat subscription error');
            return;
          }
          this.#guard('heartbeat', () => this.#onHeartbeat(msg.subject, msg.data));
        },
      });
      this.#service = await this.#addService(nc);
      this.#log.info({ server: nc.getServer() }, 'connected to NATS');
      this.#publish();
    } catch (err) {
      this.#log.error(
        { err: (err as Error).message },
        'cannot connect to NATS; the agent keeps sampling and retries on restart',
      );
    }
  }

  async #watchNats(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.#natsUp = false;
        this.#log.warn({ server: s.server }, 'disconnected from NATS; reconnecting');
      } else if (s.type === 'reconnect') {
        this.#natsUp = true;
        this.#log.info({ server: s.server }, 'reconnected to NATS');
        this.#publish();
      }
    }
  }

  async #addService(nc: NatsConnection): Promise<Service> {
    const service = await new Svcm(nc).add({
      name: SERVICE_NAME,
      version: AGENT_VERSION,
      description: 'georep region agent',
      metadata: { group: this.config.group, region: this.config.region },
    });
    const respondStatus = (err: Error | null, msg: { respond: (data: string) => boolean }) => {
      if (err !== null) return;
      msg.respond(JSON.stringify(this.report()));
    };
    service.addEndpoint('status', { subject: this.subjects.status, handler: respondStatus });
    // With two agents of this region, a request to the region lands on either; a standby passes
    // it on to the agent that replicates (its report has the region's replication links).
    const active = `${this.subjects.regionStatus(this.config.region)}.active`;
    service.addEndpoint('region-status', {
      subject: this.subjects.regionStatus(this.config.region),
      handler: (err, msg) => {
        if (err !== null) return;
        if (this.#twin === null || !this.#standby()) return respondStatus(null, msg);
        void nc.request(active, '', { timeout: 1500 }).then(
          (reply) => msg.respond(reply.data),
          () => respondStatus(null, msg),
        );
      },
    });
    // Not a queue subscription: every agent of the region gets it, only the active one answers.
    this.#activeStatus = nc.subscribe(active, {
      callback: (err, msg) => {
        if (err !== null || this.#standby()) return;
        this.#guard('status', () => respondStatus(null, msg));
      },
    });
    service.addEndpoint('vote', {
      subject: this.subjects.vote(this.config.region),
      handler: (err, msg) => {
        if (err !== null) return;
        this.#reply(msg, () => this.plane.vote(parseProposal(msg.json<unknown>())));
      },
    });
    for (const verb of API_VERBS) {
      const handler = (
        err: Error | null,
        msg: { json: <T>() => T; respond: (data: string) => boolean },
      ) => {
        if (err !== null) return;
        this.#reply(msg, () => this.#api(verb, msg.json<Record<string, unknown>>()));
      };
      service.addEndpoint(`api-${verb.replace('.', '-')}`, {
        subject: this.subjects.api(verb),
        handler,
      });
      service.addEndpoint(`region-api-${verb.replace('.', '-')}`, {
        subject: this.subjects.regionApi(this.config.region, verb),
        handler,
      });
    }
    return service;
  }

  /** Runs a callback of a timer or a subscription; an error is logged, never thrown into NATS or the loop. */
  #guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error(
        { err: (err as Error).message, in: what },
        'internal error (the agent keeps running)',
      );
    }
  }

  /** Answers an API request with the {@link ApiReply} envelope; never throws. */
  #reply(msg: { respond: (data: string) => boolean }, fn: () => unknown): void {
    const send = (reply: ApiReply<unknown>) => msg.respond(JSON.stringify(reply));
    const fail = (err: unknown) => send({ ok: false, error: serializeError(err) });
    try {
      const result = fn();
      // A verb that must ask other agents first (a dry run) answers when they did.
      if (result instanceof Promise) {
        void result.then((value: unknown) => send({ ok: true, result: value }), fail);
      } else {
        send({ ok: true, result });
      }
    } catch (err) {
      fail(err);
    }
  }

  #api(verb: string, body: Record<string, unknown>): unknown {
    if (verb.startsWith('schedule.')) {
      const context = { region: this.config.region, plane: this.plane, schedules: this.schedules };
      return scheduleApi(context, verb, body);
    }
    const doc = this.plane.document;
    switch (verb) {
      case 'group.show':
        return doc.view(this.config.region);
      case 'op.submit':
        return this.#runner.submit(parseMembershipRequest(body));
      case 'op.get': {
        const op = doc.operation(String(body.id));
        if (op === undefined) {
          throw new NotFoundError(
            'operation.not-found',
            `no operation ${String(body.id)} in the ledger`,
            {
              hint: 'list recent operations with georep history',
            },
          );
        }
        return op;
      }
      case 'switchover':
        return this.switchover.submit(parseSwitchoverRequest(body));
      case 'failover':
      case 'failback':
        return this.regionalFailover.submit(parseRegionalFailoverRequest(verb, body));
      case 'op.cancel': {
        cancelOperation(doc, String(body.id), { requestedBy: requestedByOf(body) });
        return doc.operation(String(body.id));
      }
      case 'snapshot.export':
      case 'snapshot.import':
      case 'snapshot.list':
      case 'snapshot.delete':
        return snapshotApi(
          {
            region: this.config.region,
            plane: this.plane,
            runner: this.#runner,
            snapshots: this.#snapshots,
            assertNotBusy: (what) => this.switchover.assertNotBusy(what),
          },
          verb,
          body,
        );
      default:
        return doc.history(typeof body.limit === 'number' ? body.limit : 100);
    }
  }

  /** The status report of `region`'s own agent (it alone knows its replication backlogs). */
  async #regionStatus(region: string): Promise<StatusReport> {
    if (region === this.config.region) return this.report();
    const nc = this.#nc;
    if (nc === null) throw new Error('not connected to NATS');
    const reply = await nc.request(this.subjects.regionStatus(region), '', { timeout: 2000 });
    return reply.json<StatusReport>();
  }

  async #askVote(region: string, proposal: Proposal): Promise<Ballot> {
    const nc = this.#nc;
    if (nc === null) throw new Error('not connected to NATS');
    const reply = await nc.request(this.subjects.vote(region), JSON.stringify(proposal), {
      timeout: 2000,
    });
    const envelope = reply.json<ApiReply<Ballot>>();
    if (!envelope.ok) throw new Error(envelope.error.message);
    return envelope.result;
  }

  #onHeartbeat(subject: string, data: Uint8Array): void {
    const decoded = decodeHeartbeat(data, this.config.group);
    if ('rejected' in decoded) {
      this.metrics.badMessages.inc({ subject });
      const now = Date.now();
      if (now - (this.#lastBadLog.get(subject) ?? 0) > BAD_MESSAGE_LOG_INTERVAL_MS) {
        this.#lastBadLog.set(subject, now);
        this.#log.warn({ subject, reason: decoded.rejected }, 'dropped a malformed heartbeat');
      }
      return;
    }
    if (decoded.region === this.config.region) {
      if (decoded.agent.id !== this.identity.id) {
        const known = this.#twin?.agent.id === decoded.agent.id;
        this.#twin = { agent: decoded.agent, at: Date.now() };
        if (!known) {
          this.#log.warn(
            { other: decoded.agent, standby: this.#standby() },
            'another agent publishes heartbeats for this region',
          );
        }
      }
      return;
    }
    if (subject !== this.subjects.heartbeat(decoded.region)) {
      this.metrics.badMessages.inc({ subject });
      return;
    }
    this.metrics.heartbeatsReceived.inc({ region: decoded.region });
    const wasSilent = this.#tracker.localView()[decoded.region] !== 'up';
    this.#tracker.observe(decoded);
    const previousAgent = this.#peerAgents.get(decoded.region);
    this.#peerAgents.set(decoded.region, decoded.agent.id);
    // A restarted peer, or one heard again after silence (a healed partition), has lost or
    // missed sync messages: start its sync over at once instead of waiting for the stall check.
    const restarted = previousAgent !== undefined && previousAgent !== decoded.agent.id;
    if (restarted || (wasSilent && previousAgent !== undefined))
      this.plane.peerRestarted(decoded.region);
    if (decoded.docHeads !== undefined) this.plane.observeHeads(decoded.region, decoded.docHeads);
    this.#checkView();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#tickAgain = true;
      return;
    }
    this.#ticking = true;
    try {
      do {
        this.#tickAgain = false;
        const nodes = await this.#sampler.sampleAll();
        this.#tracker.setLocal(nodes, this.identity);
        this.#tracker.expect(this.plane.document.regions().map((r) => r.name));
        this.plane.updatePeers(this.#tracker.regions);
        this.#publish();
        this.#onSampled();
        await this.autoFailover.check();
        await this.#fence.enforce();
        this.#autoUnlink.check();
        this.switchover.runDue();
      } while (this.#tickAgain && !this.#stopped);
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'health tick failed');
    } finally {
      this.#ticking = false;
    }
  }

  /** After a primary changed: sample again at once, so that every view (and Sentinel) moves on. */
  #topologyChanged(): void {
    void this.#tick();
  }

  /** Hook run after every sample of this region's nodes (discovery answers). */
  #onSampled(): void {
    this.#sentinel?.refresh();
  }

  #publish(): void {
    const nc = this.#nc;
    if (nc === null || !this.#natsUp || this.#stopped) return;
    const view = this.#tracker.localView();
    const self = this.report().regions.find((r) => r.name === this.config.region);
    const heartbeat: Heartbeat = {
      v: 1,
      group: this.config.group,
      region: this.config.region,
      agent: this.identity,
      seq: ++this.#seq,
      sentAt: Date.now(),
      intervalMs: this.config.health.intervalMs,
      downAfterMs: this.config.health.downAfterMs,
      nodes: self?.nodes ?? [],
      view,
      docHeads: this.plane.document.heads(),
      activity: this.#activity(),
      ...(this.#sentinel === null ? {} : { sentinel: this.#sentinel.address }),
    };
    try {
      nc.publish(this.subjects.heartbeat(this.config.region), JSON.stringify(heartbeat));
      this.#lastPublishedView = JSON.stringify(view);
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'could not publish heartbeat');
    }
  }

  /**
   * Publishes early when this agent's view changed, and logs region state transitions. During
   * the first `downAfterMs` after start every peer is still unheard of, so transitions are only
   * logged after it: a region that is not up then is reported once.
   */
  #checkView(): void {
    if (this.#stopped) return;
    if (JSON.stringify(this.#tracker.localView()) !== this.#lastPublishedView) this.#publish();
    if (Date.now() - this.identity.startedAt < this.config.health.downAfterMs) return;
    for (const [region, judged] of this.#tracker.states()) {
      const before = this.#lastStates.get(region);
      if (before === judged.state) continue;
      this.#lastStates.set(region, judged.state);
      if (before === undefined && judged.state === 'up') continue;
      const fields = {
        subject_region: region,
        from: before ?? 'unknown',
        to: judged.state,
        suspectBy: judged.seenSuspectBy,
      };
      if (judged.state === 'up') {
        this.#log.info(fields, `region ${region} is up`);
        continue;
      }
      // Down implies this agent suspects it too. When both happened between two checks (a busy
      // machine), the suspicion is still logged first, so the log always reads in order.
      if (judged.state === 'down' && before === 'up') {
        this.#log.warn({ ...fields, to: 'suspect' }, `region ${region} is suspect`);
      }
      this.#log.warn(fields, `region ${region} is ${judged.state}`);
    }
  }

  /** Stops timers, leaves NATS cleanly, closes Redis clients and the HTTP server. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    await this.schedules.stop();
    this.#timers = [];
    await this.#runner.idle();
    await this.replication.stop();
    this.plane.close();
    await this.#service?.stop().catch(() => undefined);
    this.#subscription?.unsubscribe();
    this.#activeStatus?.unsubscribe();
    if (this.#nc !== null) await this.#nc.drain().catch(() => undefined);
    this.#sampler.close();
    this.#fence.close();
    await this.#sentinel?.close();
    const http = this.#http;
    if (http !== null) await new Promise<void>((resolve) => http.server.close(() => resolve()));
    this.#log.info({}, 'agent stopped');
  }
}
