/**
 * Prometheus metrics of the agent, computed from the status report at scrape time so they can
 * never disagree with `georep status`. Process metrics (CPU, resident memory) come from prom-client's
 * defaults.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { StatusReport } from '@georep/core';

/** The agent's metric registry and the counters it increments. */
export interface AgentMetrics {
  registry: Registry;
  /** The Prometheus text of a scrape, gauges refreshed from the current report first. */
  render: () => Promise<string>;
  heartbeatsReceived: Counter<'region'>;
  badMessages: Counter<'subject'>;
  /** Automatic failovers made by this agent. */
  failovers: Counter<'shard'>;
}

const STATE_VALUE = { up: 1, suspect: 0.5, down: 0 } as const;

/** Creates the registry; `report` is called on every scrape. */
export function createMetrics(
  report: () => StatusReport,
  labels: { group: string; region: string },
): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ group: labels.group, agent_region: labels.region });
  collectDefaultMetrics({ register: registry });

  const heartbeatAge = new Gauge({
    name: 'georep_region_heartbeat_age_seconds',
    help: 'Seconds since this agent last heard the region heartbeat',
    labelNames: ['region'],
    registers: [registry],
  });
  const nodeUp = new Gauge({
    name: 'georep_node_up',
    help: 'Whether the Redis node answered its last health sample (1) or not (0)',
    labelNames: ['region', 'node', 'role'],
    registers: [registry],
  });
  const nodePing = new Gauge({
    name: 'georep_node_ping_seconds',
    help: 'PING round trip of the last health sample',
    labelNames: ['region', 'node'],
    registers: [registry],
  });
  const nodeLag = new Gauge({
    name: 'georep_node_replication_lag_bytes',
    help: 'Bytes a replica is behind its primary',
    labelNames: ['region', 'node'],
    registers: [registry],
  });
  const nodeMemory = new Gauge({
    name: 'georep_node_used_memory_bytes',
    help: 'INFO used_memory of the node',
    labelNames: ['region', 'node'],
    registers: [registry],
  });
  const nodeOps = new Gauge({
    name: 'georep_node_ops_per_second',
    help: 'INFO instantaneous_ops_per_sec of the node',
    labelNames: ['region', 'node'],
    registers: [registry],
  });

  const regionState = new Gauge({
    name: 'georep_region_state',
    help: 'Region state as seen by this agent: 1 up, 0.5 suspect, 0 down',
    labelNames: ['region'],
    registers: [registry],
  });

  const gauge = (name: string, help: string, labelNames: string[]) =>
    new Gauge({ name, help, labelNames, registers: [registry] });
  const replLag = gauge(
    'georep_replication_lag_seconds',
    'Time from a peer write (its clock time) to its apply in this region, last batch',
    ['peer'],
  );
  const replApplied = gauge(
    'georep_replication_applied_ops',
    'Operations from the peer applied in this region since the agent started',
    ['peer'],
  );
  const backlogMessages = gauge(
    'georep_replication_backlog_messages',
    "Batches this region's stream holds for the peer (not acknowledged by it)",
    ['peer'],
  );
  const backlogBytes = gauge(
    'georep_replication_backlog_bytes',
    "Bytes this region's stream holds for the peer (estimate)",
    ['peer'],
  );
  const backlogFullIn = gauge(
    'georep_replication_backlog_full_in_seconds',
    'Seconds until the stream limit is reached at the backlog growth of the last minute',
    ['peer'],
  );
  const backlogLost = gauge(
    'georep_replication_backlog_lost',
    'Whether the stream limit dropped operations the peer had not received (1: resync needed)',
    ['peer'],
  );
  const shardLag = gauge(
    'georep_replication_shard_lag_seconds',
    'Lag of the last batch applied from the peer into one shard (the per-peer figure is the worst shard)',
    ['peer', 'shard'],
  );
  const shardBacklog = gauge(
    'georep_replication_shard_backlog_messages',
    "Batches one shard's stream holds for the peer",
    ['peer', 'shard'],
  );
  const standby = gauge(
    'georep_replication_standby',
    '1 while this agent stands by because another agent of its region replicates it',
    [],
  );
  const captured = gauge(
    'georep_replication_captured_ops',
    "Operations captured from this region's primary since the agent started",
    [],
  );
  const unconfirmed = gauge(
    'georep_replication_unconfirmed_batches',
    'Batches sent to other regions before a replica of the primary confirmed them (a failover could lose them here)',
    [],
  );
  const shardPrimary = gauge(
    'georep_shard_primary',
    'The node that is primary of each shard (1), as this agent sees it',
    ['region', 'shard', 'node'],
  );
  const routed = gauge(
    'georep_region_routed',
    "1 while a regional failover serves the region's traffic from region `to`",
    ['region', 'to'],
  );
  const busy = gauge(
    'georep_region_busy',
    '1 while a switchover (switching) or an automatic failover (failing-over) runs in the region',
    ['region', 'kind'],
  );

  /** Refreshes every gauge from one report, so a scrape is consistent with itself. */
  const refresh = () => {
    for (const g of [
      regionState,
      heartbeatAge,
      nodeUp,
      nodePing,
      nodeLag,
      nodeMemory,
      nodeOps,
      replLag,
      replApplied,
      backlogMessages,
      backlogBytes,
      backlogFullIn,
      backlogLost,
      shardLag,
      shardBacklog,
      standby,
      captured,
      unconfirmed,
      shardPrimary,
      routed,
      busy,
    ])
      g.reset();
    for (const region of report().regions) {
      regionState.set({ region: region.name }, STATE_VALUE[region.state]);
      if (region.heartbeatAgeMs !== null)
        heartbeatAge.set({ region: region.name }, region.heartbeatAgeMs / 1000);
      for (const node of region.nodes) {
        const l = { region: region.name, node: node.id };
        nodeUp.set({ ...l, role: node.role }, node.up ? 1 : 0);
        if (node.pingMs !== undefined) nodePing.set(l, node.pingMs / 1000);
        if (node.lagBytes !== undefined) nodeLag.set(l, node.lagBytes);
        if (node.usedMemoryBytes !== undefined) nodeMemory.set(l, node.usedMemoryBytes);
        if (node.opsPerSec !== undefined) nodeOps.set(l, node.opsPerSec);
        if (node.up && node.role === 'primary')
          shardPrimary.set({ region: region.name, shard: node.shard ?? 'main', node: node.id }, 1);
      }
      if (region.routedTo != null) routed.set({ region: region.name, to: region.routedTo }, 1);
      if (region.activity != null) busy.set({ region: region.name, kind: region.activity.kind }, 1);
      const rep = region.replication;
      if (rep === undefined) continue;
      if (rep.capture !== null) captured.set(rep.capture.ops);
      if (rep.state === 'standby') standby.set(1);
      for (const shard of rep.shards ?? []) {
        for (const link of shard.links) {
          const l = { peer: link.peer, shard: shard.shard };
          if (link.lagMs !== null) shardLag.set(l, link.lagMs / 1000);
          if (link.backlog !== null) shardBacklog.set(l, link.backlog.messages);
        }
      }
      if (rep.capture?.unconfirmed !== undefined) unconfirmed.set(rep.capture.unconfirmed);
      for (const link of rep.links) {
        const l = { peer: link.peer };
        if (link.lagMs !== null) replLag.set(l, link.lagMs / 1000);
        replApplied.set(l, link.appliedOps);
        if (link.backlog !== null) {
          backlogMessages.set(l, link.backlog.messages);
          backlogBytes.set(l, link.backlog.bytes);
          backlogLost.set(l, link.backlog.lost ? 1 : 0);
          if (link.backlog.fullInSec !== null) backlogFullIn.set(l, link.backlog.fullInSec);
        }
      }
    }
  };

  return {
    registry,
    render: async () => {
      refresh();
      return registry.metrics();
    },
    heartbeatsReceived: new Counter({
      name: 'georep_heartbeats_received_total',
      help: 'Heartbeats received from other regions',
      labelNames: ['region'],
      registers: [registry],
    }),
    badMessages: new Counter({
      name: 'georep_bad_messages_total',
      help: 'Messages dropped because they failed validation',
      labelNames: ['subject'],
      registers: [registry],
    }),
    failovers: new Counter({
      name: 'georep_failovers_total',
      help: "Automatic failovers of a shard of this agent's region made by this agent",
      labelNames: ['shard'],
      registers: [registry],
    }),
  };
}
