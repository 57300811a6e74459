/**
 * Role changes made with REPLICAOF live in memory only: a node restarted from its config file
 * comes back with its old role (an old primary returning as primary). Like Sentinel, georep
 * rewrites the config file after each change so a restart keeps the new role.
 */
import type { Redis } from 'ioredis';

/**
 * `CONFIG REWRITE` on `client`'s node. Returns false (and changes nothing) when the node was
 * started without a config file, the file is not writable, or CONFIG is renamed or denied: the
 * role change itself stands either way, so this never throws.
 */
export async function persistRole(client: Redis): Promise<boolean> {
  try {
    await client.call('CONFIG', 'REWRITE');
    return true;
  } catch {
    return false;
  }
}
