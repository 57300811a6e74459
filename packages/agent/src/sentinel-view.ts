/**
 * What the Sentinel-compatible endpoint answers, derived from what the agent already knows: the
 * nodes of every region (its own samples, the others' heartbeats), the primaries recorded in the
 * group document, and the regional routing.
 *
 * Master names: `REGION` is the region's first shard (the only one, usually) and `REGION:SHARD`
 * any shard. When REGION's traffic is routed to another region (regional failover), REGION's
 * names answer that region's primary of the same shard (or of its first shard), so REGION's
 * clients move without DNS. A shard whose primary is down keeps answering it until a replica is
 * promoted, as Sentinel does.
 */
import type { StatusReport } from '@georep/core';
import { routedTo, shardPrimaries, type GroupDocument } from '@georep/group';
import {
  sentinelRunId,
  type SentinelMaster,
  type SentinelPeer,
  type SentinelView,
} from './sentinel-endpoint.js';
import { shardsOf, type ShardView } from './shards.js';

/** What {@link makeSentinelView} reads. */
export interface SentinelSources {
  report: () => StatusReport;
  document: GroupDocument;
  /** A stable seed of the run id Sentinel clients see (group and region: same across restarts). */
  seed: string;
  failover: { downAfterMs: number; failoverTimeoutMs: number };
}

/** The master names of a region's shards: `REGION` for the first, `REGION:SHARD` for each. */
export function masterNames(region: string, shards: string[]): { name: string; shard: string }[] {
  const names = shards.map((shard) => ({ name: `${region}:${shard}`, shard }));
  return shards[0] === undefined ? names : [{ name: region, shard: shards[0] }, ...names];
}

/**
 * The answer for every master name. `servingRegionOf` says whose primaries serve a region's names
 * (the routing in the group document; a dry run passes the routing it would set).
 */
export function resolveMasters(
  report: StatusReport,
  document: GroupDocument,
  servingRegionOf: (region: string) => string,
  failover: { downAfterMs: number; failoverTimeoutMs: number },
): SentinelMaster[] {
  const shardsByRegion = new Map<string, ShardView[]>();
  for (const r of report.regions) {
    shardsByRegion.set(r.name, shardsOf(r.nodes, shardPrimaries(document, r.name)));
  }
  const out: SentinelMaster[] = [];
  for (const [region, shards] of shardsByRegion) {
    const serving = shardsByRegion.get(servingRegionOf(region)) ?? [];
    for (const { name, shard } of masterNames(
      region,
      shards.map((s) => s.shard),
    )) {
      const view = serving.find((s) => s.shard === shard) ?? serving[0];
      const primary = view?.primary;
      if (view === undefined || primary === undefined) continue;
      out.push({
        name,
        primary: {
          host: primary.host,
          port: primary.port,
          ...(primary.runId === undefined ? {} : { runId: primary.runId }),
          flags: primary.up ? 'master' : 'master,s_down',
        },
        replicas: view.replicas.map((r) => ({
          host: r.host,
          port: r.port,
          up: r.up,
          ...(r.replicaOffset === undefined ? {} : { offset: r.replicaOffset }),
          ...(r.lagBytes === undefined ? {} : { lagBytes: r.lagBytes }),
          ...(r.replicaPriority === undefined ? {} : { priority: r.replicaPriority }),
        })),
        quorum: 1,
        downAfterMs: failover.downAfterMs,
        failoverTimeoutMs: failover.failoverTimeoutMs,
      });
    }
  }
  return out;
}

/** A {@link SentinelView} over the agent's report and group document. */
export function makeSentinelView(sources: SentinelSources): SentinelView {
  const myId = sentinelRunId(sources.seed);
  return {
    myId,
    masters: () =>
      resolveMasters(
        sources.report(),
        sources.document,
        (region) => routedTo(sources.document, region) ?? region,
        sources.failover,
      ),
    sentinels(): SentinelPeer[] {
      const report = sources.report();
      return report.regions
        .filter((r) => r.name !== report.answeredBy && r.state === 'up' && r.sentinel != null)
        .map((r) => ({ host: r.sentinel!.host, port: r.sentinel!.port }));
    },
  };
}
