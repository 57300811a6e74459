/**
 * Samples every Redis node of the region once per health tick, in parallel, and fills in each
 * replica's lag from its primary's view (INFO of the primary lists every replica's offset).
 */
import type { Redis } from 'ioredis';
import type { ConfiguredNode, NodeRole, NodeSample, RedisConfig } from '@georep/core';
import { createNodeClient, sampleNode } from '@georep/redis';
import { sameHost } from './shards.js';

/** Owns one client per configured node. */
export class NodeSampler {
  readonly #nodes: { node: ConfiguredNode; client: Redis; lastRole: NodeRole }[];

  constructor(nodes: ConfiguredNode[], config: RedisConfig) {
    this.#nodes = nodes.map((node, i) => ({
      node,
      client: createNodeClient(node, config, { connectionName: 'georep-agent-health' }),
      // Until a node answers, assume the conventional layout: the first node is the primary.
      lastRole: i === 0 ? 'primary' : 'replica',
    }));
  }

  /** One sample of every node. Never throws. */
  async sampleAll(): Promise<NodeSample[]> {
    const samples = await Promise.all(
      this.#nodes.map((n) => sampleNode(n.client, n.node, n.lastRole)),
    );
    samples.forEach((sample, i) => {
      const entry = this.#nodes[i];
      if (entry !== undefined && sample.up) entry.lastRole = sample.role;
    });
    return withReplicaLag(samples);
  }

  /** Closes every client. */
  close(): void {
    for (const { client } of this.#nodes) client.disconnect();
  }
}

/** Sets `lagBytes` on each replica from the matching entry in its primary's replica list. */
export function withReplicaLag(samples: NodeSample[]): NodeSample[] {
  return samples.map((sample) => {
    if (sample.role !== 'replica' || !sample.up || sample.primary === undefined) return sample;
    const primary = samples.find(
      (p) =>
        p.up &&
        p.role === 'primary' &&
        p.port === sample.primary?.port &&
        sameHost(p.host, sample.primary.host),
    );
    const link = primary?.replicas?.find(
      (r) => r.port === sample.port && sameHost(r.host, sample.host),
    );
    return link === undefined ? sample : { ...sample, lagBytes: link.lagBytes };
  });
}
