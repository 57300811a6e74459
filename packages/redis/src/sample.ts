/** One health sample of one node: PING latency and the INFO sections the health plane shows. */
import type { Redis } from 'ioredis';
import type { ConfiguredNode, NodeRole, NodeSample } from '@georep/core';
import { waitForClientReady } from './client-ready.js';
import { parseInfo, summarizeInfo } from './info.js';

const INFO_SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication'];

/**
 * Samples `node` through `client`. Never throws: an unreachable node gives `up: false` with the
 * reason, and keeps `lastRole` so that `status` can still say what the node was.
 */
export async function sampleNode(
  client: Redis,
  node: ConfiguredNode,
  lastRole: NodeRole,
  readyTimeoutMs = 1000,
): Promise<NodeSample> {
  const base = {
    id: node.id,
    host: node.host,
    port: node.port,
    ...(node.shard === undefined ? {} : { shard: node.shard }),
  };
  const sampledAt = Date.now();
  try {
    // A client still connecting gets a short grace; a refused connection reports the node down.
    await waitForClientReady(client, { timeoutMs: readyTimeoutMs, giveUpOn: 'error' });
    const started = performance.now();
    await client.ping();
    const pingMs = Math.round((performance.now() - started) * 100) / 100;
    const summary = summarizeInfo(parseInfo(await readInfo(client)));
    const { loading, replicas, ...rest } = summary;
    return {
      ...base,
      ...rest,
      ...(summary.role === 'primary' ? { replicas } : {}),
      up: !loading,
      ...(loading ? { error: 'LOADING: the node is loading its dataset' } : {}),
      pingMs,
      sampledAt,
    };
  } catch (err) {
    return { ...base, up: false, role: lastRole, error: describe(err), sampledAt };
  }
}

/** INFO with several sections needs Redis 7.0+; older servers get the default sections. */
async function readInfo(client: Redis): Promise<string> {
  try {
    return await client.info(...INFO_SECTIONS);
  } catch (err) {
    if (/syntax error|wrong number of arguments/i.test((err as Error).message))
      return client.info();
    throw err;
  }
}

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/Stream isn't writeable|enableOfflineQueue/i.test(message)) return 'not connected';
  return message;
}
