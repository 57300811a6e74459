/**
 * A region's nodes grouped into shards (a primary and its replicas), from health samples and the
 * primaries recorded in the group document. Two nodes of one shard can both claim to be primary
 * (an old primary that returns after a failover); the recorded one is the legitimate one, and
 * the other is reported as `stalePrimaries` so that the agent can demote it.
 */
import { DEFAULT_SHARD, type NodeSample } from '@georep/core';

/** One shard as the agent sees it now. */
export interface ShardView {
  shard: string;
  /** The legitimate primary (possibly down), or undefined when none is known. */
  primary: NodeSample | undefined;
  /** The other nodes of the shard. */
  replicas: NodeSample[];
  /** Up nodes that report role primary but are not the legitimate primary. */
  stalePrimaries: NodeSample[];
}

/** True when two host names denote the same host (loopback spellings are equal). */
export function sameHost(a: string, b: string): boolean {
  const norm = (h: string) => (h === 'localhost' || h === '::1' ? '127.0.0.1' : h);
  return norm(a) === norm(b);
}

/** The shard of a sample (`main` for agents that predate shards). */
export const shardOf = (node: Pick<NodeSample, 'shard'>): string => node.shard ?? DEFAULT_SHARD;

/**
 * Groups `samples` by shard. The primary of a shard is, in order: the node recorded in
 * `recorded` (shard → node id) if it is up as primary; else the only up node claiming primary;
 * else the recorded node even if down; else a down node whose last role was primary.
 */
export function shardsOf(samples: NodeSample[], recorded: Record<string, string>): ShardView[] {
  const byShard = new Map<string, NodeSample[]>();
  for (const sample of samples) {
    const list = byShard.get(shardOf(sample)) ?? [];
    list.push(sample);
    byShard.set(shardOf(sample), list);
  }
  return [...byShard.entries()]
    .sort(([a], [b]) => (a === DEFAULT_SHARD ? -1 : b === DEFAULT_SHARD ? 1 : a < b ? -1 : 1))
    .map(([shard, nodes]) => {
      const recordedNode = nodes.find((n) => n.id === recorded[shard]);
      const claiming = nodes.filter((n) => n.up && n.role === 'primary');
      const primary =
        (recordedNode?.up === true && recordedNode.role === 'primary' ? recordedNode : undefined) ??
        (claiming.length === 1 ? claiming[0] : undefined) ??
        recordedNode ??
        claiming[0] ??
        nodes.find((n) => n.role === 'primary');
      return {
        shard,
        primary,
        replicas: nodes.filter((n) => n !== primary),
        stalePrimaries: claiming.filter((n) => n !== primary),
      };
    });
}
