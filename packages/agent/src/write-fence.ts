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
import type { GroupPlane } from './group-plane.js';
import type { ShardView } from './shards.js';

/** See the module comment. */
export class WriteFence {
  readonly #config: AgentConfig;
  readonly #plane: GroupPlane;
  readonly #shards: () => ShardView[];
  readonly #log: Logger;
  /** Primaries (host:port) currently paused by this agent. */
  #paused = new Set<string>();
  #active = false;

  constructor(config: AgentConfig, plane: GroupPlane, shards: () => ShardView[]) {
    this.#config = config;
    this.#plane = plane;
    this.#shards = shards;
    this.#log = makeLogger('fence');
  }

  /** True while this region's primaries refuse application writes. */
  get active(): boolean {
    return this.#active;
  }

  /** Brings the primaries in line with the group document. Called after every sample. */
  async enforce(): Promise<void> {
    const self = this.#config.region;
    const doc = this.#plane.document;
    const wanted = writesFenced(doc, self) && routedTo(doc, self) !== null;
    const primaries = this.#shards()
      .map((s) => s.primary)
      .filter((p) => p !== undefined && p.up && p.role === 'primary');
    if (!wanted) {
      if (this.#paused.size > 0 || this.#active) {
        for (const p of primaries) await this.#run(p!, ['CLIENT', 'UNPAUSE']);
        this.#paused.clear();
        this.#active = false;
        this.#log.info({}, 'write fence lifted: the primaries accept writes again');
      }
      return;
    }
    // Three samples' worth: renewed each sample, gone soon after the agent is.
    const pauseMs = Math.max(3000, 3 * this.#config.health.intervalMs);
    for (const p of primaries) {
      const key = `${p!.host}:${p!.port}`;
      await this.#run(p!, ['CLIENT', 'PAUSE', String(pauseMs), 'WRITE'], async (client) => {
        if (!this.#paused.has(key)) {
          this.#paused.add(key);
          const killed = await disconnectApplicationClients(client);
          this.#log.warn(
            { node: p!.id, servedBy: routedTo(doc, self), clientsDisconnected: killed },
            'write fence: this region is served elsewhere; application writes are paused',
          );
        }
      });
    }
    this.#active = true;
  }

  async #run(
    node: { id: string; host: string; port: number },
    command: string[],
    then?: (client: ReturnType<typeof createNodeClient>) => Promise<void>,
  ): Promise<void> {
    const client = createNodeClient(node, this.#config.redis, {
      connectionName: 'georep-fence',
      lazyConnect: true,
    });
    try {
      await client.connect();
      await client.call(command[0]!, ...command.slice(1));
      await then?.(client);
    } catch (err) {
      this.#log.warn({ node: node.id, err: (err as Error).message }, 'write fence step failed');
    } finally {
      client.disconnect();
    }
  }
}
