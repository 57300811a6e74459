/**
 * Disconnecting a node's application clients after its role changed, the way Sentinel does after
 * a failover: Sentinel-aware clients reconnect, ask for the primary again and land on the new
 * one, instead of writing into a replica (READONLY) until their next error. georep's own
 * connections (named `georep-*`) are kept, as are replication links.
 */
import type { Redis } from 'ioredis';

/** Parses CLIENT LIST into one record per connection. */
export function parseClientList(text: string): Record<string, string>[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const fields: Record<string, string> = {};
      for (const pair of line.split(' ')) {
        const eq = pair.indexOf('=');
        if (eq > 0) fields[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      return fields;
    });
}

/**
 * Kills the normal and pub/sub connections whose name does not start with `keepNamePrefix`, and
 * returns how many were killed. The calling connection is never killed.
 */
export async function disconnectApplicationClients(
  client: Redis,
  keepNamePrefix = 'georep',
): Promise<number> {
  const list = parseClientList(String(await client.call('CLIENT', 'LIST')));
  const self = String(await client.call('CLIENT', 'ID'));
  let killed = 0;
  for (const entry of list) {
    const { id, name = '', flags = '' } = entry;
    if (id === undefined || id === self || name.startsWith(keepNamePrefix)) continue;
    // S: a replica's link, M: this node's link to its primary; both belong to replication.
    if (flags.includes('S') || flags.includes('M')) continue;
    const count = Number(await client.call('CLIENT', 'KILL', 'ID', id).catch(() => 0));
    killed += Number.isFinite(count) ? count : 0;
  }
  return killed;
}
