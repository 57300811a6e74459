/**
 * Fencing this region's primaries while its traffic is served by another region (regional
 * failover): application clients that did not move must not keep writing into a region the group
 * stopped serving.
 *
 * The fence is `CLIENT PAUSE <ms> WRITE` on every primary, renewed at every health sample, plus
 * one disconnect of the application clients when it starts (Sentinel-aware clients reconnect and
 * are sent to the serving region). Paused writes wait instead of failing; clients time out on
 * their own. The pause is renewed for a few samples at a time, so a fence whose agent died lifts
 * by itself (fail open: the region's data is still replicated, never lost). While fenced, georep's
 * own writes wait too: the region applies its peers' operations again when the fence is lifted,
 * which a failback does first.
 */
import { makeLogger, type AgentConfig, type Logger } from '@georep/core';
import { routedTo, writesFenced } from '@georep/group';
import { createNodeClient, disconnectApplicationClients } from '@georep/redis';
import type { Redis } from 'ioredis';
import type { GroupPlane } from './group-plane.js';
import type { ShardView } from './shards.js';

/** See the module comment. */
export class WriteFence {
  readonly #config: AgentConfig;
  readonly #plane: GroupPlane;
  readonly #shards: () => ShardView[];
  readonly #log: Logger;
  /** node id → the connection that pauses it; present exactly while that primary is fenced. */
  readonly #clients = new Map<string, Redis>();

  constructor(config: AgentConfig, plane: GroupPlane, shards: () => ShardView[]) {
    this.#config = config;
    this.#plane = plane;
    this.#shards = shards;
    this.#log = makeLogger('fence');
  }

  /** Brings the primaries in line with the group document. Called after every sample. */
  async enforce(): Promise<void> {
    const self = this.#config.region;
    const doc = this.#plane.document;
    const wanted = writesFenced(doc, self) && routedTo(doc, self) !== null;
    if (!wanted) {
      if (this.#clients.size === 0) return;
      for (const [node, client] of this.#clients) {
        await client
          .call('CLIENT', 'UNPAUSE')
          .catch((err: Error) =>
            this.#log.warn({ node, err: err.message }, 'write fence: unpause failed'),
          );
        client.disconnect();
      }
      this.#clients.clear();
      this.#log.info({}, 'write fence lifted: the primaries accept writes again');
      return;
    }
    // Three samples' worth: renewed each sample, gone soon after the agent is.
    const pauseMs = String(Math.max(3000, 3 * this.#config.health.intervalMs));
    for (const shard of this.#shards()) {
      const p = shard.primary;
      if (p === undefined || !p.up || p.role !== 'primary') continue;
      let client = this.#clients.get(p.id);
      const first = client === undefined;
      try {
        if (client === undefined) {
          client = createNodeClient(p, this.#config.redis, {
            connectionName: 'georep-fence',
            lazyConnect: true,
          });
          this.#clients.set(p.id, client);
          await client.connect();
        }
        await client.call('CLIENT', 'PAUSE', pauseMs, 'WRITE');
        if (first) {
          const killed = await disconnectApplicationClients(client);
          this.#log.warn(
            { node: p.id, servedBy: routedTo(doc, self), clientsDisconnected: killed },
            'write fence: this region is served elsewhere; application writes are paused',
          );
        }
      } catch (err) {
        // A first attempt that failed starts over next time, clients' disconnect included.
        if (first) {
          client?.disconnect();
          this.#clients.delete(p.id);
        }
        this.#log.warn({ node: p.id, err: (err as Error).message }, 'write fence step failed');
      }
    }
  }

  /** Closes the fence's connections (the pauses lapse on their own). */
  close(): void {
    for (const client of this.#clients.values()) client.disconnect();
    this.#clients.clear();
  }
}
