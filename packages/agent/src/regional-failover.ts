/**
 * User-controlled regional failover: `georep failover --from R --to S` makes S's primaries serve
 * R's traffic, and `georep failback R` returns it.
 *
 * The switch is a routing entry in the group document: every agent's Sentinel-compatible endpoint
 * answers S's primary for R's master names from then on (and announces `+switch-master`), so
 * Sentinel-aware clients of R move to S without DNS. Both regions accept writes and replicate to
 * each other, so nothing is lost by clients arriving at S while R's last operations are still in
 * flight. While routed away, R's agent fences R's primaries against application writes (see
 * write-fence.ts) so that clients which did not move cannot keep writing into R.
 *
 * A failover changes where the group sends traffic, so it needs a majority of the linked regions'
 * agents to vote yes, or an explicit `--force --yes` (recorded as forced). `--dry-run` changes
 * nothing and prints what would change: each master name's answer before and after, and the data
 * at risk, R's operations not yet applied in S.
 *
 * Failback first lifts the fence, waits until R and S have applied each other's operations (both
 * backlogs empty), and only then routes R's names back; if that does not happen in time it fails
 * saying what is left, with R still routed to S (and no longer fenced) so that a retry continues.
 */
import {
  ConflictError,
  NotFoundError,
  UsageError,
  makeLogger,
  type AgentConfig,
  type Logger,
  type OperationView,
  type RegionState,
  type StatusReport,
} from '@georep/core';
import { routedTo, setRouting, writesFenced } from '@georep/group';
import type { GroupPlane } from './group-plane.js';
import type { OperationRunner } from './operations.js';
import { resolveMasters } from './sentinel-view.js';
import { waitDrained } from './drain.js';

/** A failover or failback request as the CLI sends it. */
export interface RegionalFailoverRequest {
  kind: 'failover' | 'failback';
  /** The region whose traffic moves (R). */
  region: string;
  /** failover: the region that serves it (S). */
  to?: string;
  dryRun: boolean;
  force: boolean;
  yes: boolean;
  reason?: string;
  /** failback: how long to wait for both directions to catch up. */
  catchUpTimeoutMs?: number;
  clientToken: string | null;
  requestedBy: string;
}

/** What a region's names answer, before and after. */
export interface RouteChange {
  name: string;
  before: { host: string; port: number } | null;
  after: { host: string; port: number } | null;
}

/** Operations of R that S has not applied (from R's stream: S's consumer backlog). */
export interface DataAtRisk {
  operations: number;
  bytes: number;
  oldestAgeMs: number | null;
}

/** What the module needs from the agent. */
export interface RegionalFailoverContext {
  config: AgentConfig;
  plane: GroupPlane;
  runner: OperationRunner;
  healthOf: (region: string) => RegionState | undefined;
  /** The status report of `region`'s own agent (it alone knows its replication backlogs). */
  regionStatus: (region: string) => Promise<StatusReport>;
  /** This agent's current report (every region's nodes). */
  report: () => StatusReport;
  /** Called after the routing changed (the Sentinel endpoint announces it). */
  onRoutingChange: () => void;
}

/** How long a failback waits for both directions by default. */
const DEFAULT_CATCH_UP_MS = 120_000;

/** See the module comment. */
export class RegionalFailover {
  readonly #ctx: RegionalFailoverContext;
  readonly #log: Logger;

  constructor(context: RegionalFailoverContext) {
    this.#ctx = context;
    this.#log = makeLogger('regional-failover');
  }

  /**
   * Validates a request. A dry run answers with the plan; otherwise the operation is recorded
   * (idempotent by client token) and runs in the background.
   */
  async submit(request: RegionalFailoverRequest): Promise<OperationView | Record<string, unknown>> {
    const doc = this.#ctx.plane.document;
    const retried =
      request.clientToken !== null && doc.operationByToken(request.clientToken) !== undefined;
    if (!retried) this.#validate(request);
    if (request.dryRun) return this.#plan(request);
    const params = {
      region: request.region,
      ...(request.kind === 'failover' ? { to: request.to, force: request.force } : {}),
    };
    const { operation, created } = this.#ctx.runner.recordTask(request.kind, params, request);
    if (created) {
      this.#ctx.runner.startTask(operation.id, (id) =>
        request.kind === 'failover' ? this.#failover(request, id) : this.#failback(request, id),
      );
    }
    return doc.operation(operation.id) ?? operation;
  }

  #validate(request: RegionalFailoverRequest): void {
    const doc = this.#ctx.plane.document;
    const region = request.region;
    const member = (name: string) => {
      if (doc.region(name) === undefined) {
        throw new NotFoundError('region.not-found', `region ${name} is not a member of the group`, {
          hint: `members: ${doc
            .regions()
            .map((r) => r.name)
            .join(', ')}`,
        });
      }
    };
    member(region);
    if (request.kind === 'failback') {
      if (routedTo(doc, region) === null) {
        throw new ConflictError(
          'failback.not-failed-over',
          `${region} serves its own traffic; there is nothing to fail back`,
          { hint: 'georep group show lists the routing of every region' },
        );
      }
      if (this.#ctx.healthOf(region) !== 'up') {
        throw new ConflictError(
          'failback.region-not-up',
          `${region} is ${this.#ctx.healthOf(region) ?? 'unknown'}; its traffic can only return when it is up`,
          { hint: 'wait until georep status shows it up, then repeat' },
        );
      }
      return;
    }
    const to = request.to ?? '';
    member(to);
    if (to === region) {
      throw new UsageError('failover.same-region', `--from and --to are both ${region}`, {
        hint: 'name the region that should serve the traffic with --to',
      });
    }
    const current = routedTo(doc, region);
    if (current !== null) {
      throw new ConflictError(
        'failover.already-failed-over',
        `${region}'s traffic is already served by ${current}`,
        { hint: `fail it back first: georep failback ${region}` },
      );
    }
    if (routedTo(doc, to) !== null) {
      throw new ConflictError(
        'failover.target-routed',
        `${to} does not serve its own traffic (it is routed to ${routedTo(doc, to)})`,
        { hint: `choose a region that serves itself, or fail ${to} back first` },
      );
    }
    const servedByRegion = doc
      .regions()
      .filter((r) => routedTo(doc, r.name) === region)
      .map((r) => r.name);
    if (servedByRegion.length > 0) {
      throw new ConflictError(
        'failover.region-serves-others',
        `${region} serves the traffic of ${servedByRegion.join(', ')}`,
        { hint: `move those first (georep failback ${servedByRegion[0]})` },
      );
    }
    if (doc.region(to)?.linkState !== 'linked' || this.#ctx.healthOf(to) !== 'up') {
      throw new ConflictError(
        'failover.target-not-up',
        `${to} is ${doc.region(to)?.linkState ?? 'unknown'} and ${this.#ctx.healthOf(to) ?? 'unknown'}: traffic can only move to a linked region that is up`,
        { hint: 'choose another region (georep status)' },
      );
    }
    if (request.force && !request.yes && !request.dryRun) {
      throw new UsageError(
        'usage.confirmation-required',
        `a forced failover of ${region} skips the vote and needs --yes`,
        { hint: `repeat with --force --yes --reason "...", or without --force to hold a vote` },
      );
    }
  }

  /** The dry-run answer: what would change, and what is at risk. */
  async #plan(request: RegionalFailoverRequest): Promise<Record<string, unknown>> {
    const region = request.region;
    const doc = this.#ctx.plane.document;
    const to = request.kind === 'failover' ? request.to! : region;
    const risk =
      request.kind === 'failover' ? await this.#dataAtRisk(region, to) : { risk: null, note: '' };
    return {
      dryRun: true,
      kind: request.kind,
      region,
      servedBy: { before: routedTo(doc, region) ?? region, after: to },
      changes: this.#changes(region, to),
      dataAtRisk: risk.risk,
      dataAtRiskNote: risk.note,
      fence:
        request.kind === 'failover'
          ? `${region}'s primaries refuse application writes until failback${this.#ctx.healthOf(region) === 'up' ? '' : ` (once ${region} is reachable)`}`
          : `${region}'s fence is lifted, then traffic returns once both directions caught up`,
      decision:
        request.kind === 'failover' && request.force
          ? 'forced: no vote'
          : `a vote of the ${doc.linkedRegions().length} linked regions (majority ${Math.floor(doc.linkedRegions().length / 2) + 1})`,
    };
  }

  /** Each of `region`'s names: its answer now and when served by `servedBy`. */
  #changes(region: string, servedBy: string): RouteChange[] {
    const doc = this.#ctx.plane.document;
    const report = this.#ctx.report();
    const failover = this.#ctx.config.failover;
    const now = resolveMasters(report, doc, (r) => routedTo(doc, r) ?? r, failover);
    const then = resolveMasters(
      report,
      doc,
      (r) => (r === region ? servedBy : (routedTo(doc, r) ?? r)),
      failover,
    );
    const mine = (name: string) => name === region || name.startsWith(`${region}:`);
    const addr = (m: { primary: { host: string; port: number } } | undefined) =>
      m === undefined ? null : { host: m.primary.host, port: m.primary.port };
    return then
      .filter((m) => mine(m.name))
      .map((m) => ({
        name: m.name,
        before: addr(now.find((n) => n.name === m.name)),
        after: addr(m),
      }));
  }

  /** R's operations not yet applied in S, from R's agent (null when R cannot be asked). */
  async #dataAtRisk(
    region: string,
    to: string,
  ): Promise<{ risk: DataAtRisk | null; note: string }> {
    try {
      const report = await this.#ctx.regionStatus(region);
      const link = report.regions
        .find((r) => r.name === region)
        ?.replication?.links.find((l) => l.peer === to);
      const backlog = link?.backlog;
      if (backlog == null) {
        return { risk: null, note: `${region}'s agent does not report a backlog for ${to}` };
      }
      return {
        risk: {
          operations: backlog.messages,
          bytes: backlog.bytes,
          oldestAgeMs: backlog.oldestAgeMs,
        },
        note:
          backlog.messages === 0
            ? `${to} has applied every operation of ${region}`
            : `${to} applies them when ${region}'s stream reaches it; they are lost only if ${region} never returns`,
      };
    } catch (err) {
      return {
        risk: null,
        note: `${region}'s agent did not answer (${(err as Error).message}): its unreplicated operations are unknown; they stay in ${region}'s stream until it returns`,
      };
    }
  }

  async #failover(
    request: RegionalFailoverRequest,
    operationId: string,
  ): Promise<Record<string, unknown>> {
    const region = request.region;
    const to = request.to!;
    const risk = await this.#dataAtRisk(region, to);
    const ballots = request.force
      ? null
      : await this.#ctx.runner.vote('failover', region, operationId);
    // Checked again after the vote: another change may have been merged meanwhile.
    this.#validate({ ...request, dryRun: false, yes: true });
    const changes = this.#changes(region, to);
    const by = `${request.requestedBy} via ${this.#ctx.config.region}`;
    setRouting(
      this.#ctx.plane.document,
      region,
      { to, fenceWrites: true, kind: 'failover.regional' },
      {
        region: this.#ctx.config.region,
        operationId,
        message: `${region}'s traffic is served by ${to}${request.force ? ` (forced by ${by}: ${request.reason ?? 'no reason given'})` : ''}`,
      },
    );
    this.#ctx.onRoutingChange();
    this.#log.warn({ region, to, forced: request.force }, 'regional failover');
    return {
      region,
      servedBy: to,
      changes,
      dataAtRisk: risk.risk,
      dataAtRiskNote: risk.note,
      forced: request.force ? { by, reason: request.reason ?? '(no reason given)' } : null,
      votes: ballots,
    };
  }

  async #failback(
    request: RegionalFailoverRequest,
    operationId: string,
  ): Promise<Record<string, unknown>> {
    const region = request.region;
    const doc = this.#ctx.plane.document;
    const servedBy = routedTo(doc, region)!;
    const ballots = await this.#ctx.runner.vote('failback', region, operationId);
    const by = { region: this.#ctx.config.region, operationId };
    if (writesFenced(doc, region)) {
      setRouting(
        doc,
        region,
        { to: servedBy, fenceWrites: false, kind: 'failback.unfenced' },
        { ...by, message: `${region}'s primaries accept writes again (failback started)` },
      );
    }
    const left = await waitDrained({
      regionStatus: this.#ctx.regionStatus,
      pairs: [
        [region, servedBy],
        [servedBy, region],
      ],
      since: Date.now(),
      timeoutMs: request.catchUpTimeoutMs ?? DEFAULT_CATCH_UP_MS,
    });
    if (left !== '') {
      throw new ConflictError(
        'failback.not-caught-up',
        `${region} and ${servedBy} have not caught up: ${left}`,
        {
          hint: `traffic stays on ${servedBy} and ${region} is no longer fenced; repeat georep failback ${region} once the backlogs drain (georep status)`,
        },
      );
    }
    const changes = this.#changes(region, region);
    setRouting(
      doc,
      region,
      { to: null, fenceWrites: false, kind: 'failback' },
      { ...by, message: `${region} serves its own traffic again (was served by ${servedBy})` },
    );
    this.#ctx.onRoutingChange();
    this.#log.info({ region, from: servedBy }, 'failback done');
    return {
      region,
      servedBy: region,
      previouslyServedBy: servedBy,
      changes,
      votes: ballots,
    };
  }
}
