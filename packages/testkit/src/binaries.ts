/** Locating the server binaries, with an install hint when one is missing. */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { DependencyMissingError } from '@georep/core';

/** Debian puts nats-server in /usr/sbin, which is not on every user's PATH. */
const EXTRA_DIRS = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/usr/bin'];

const PACKAGES: Record<string, string> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  'nats-server': 'nats-server',
};

/** Absolute path of `name` on PATH (plus the sbin directories), or throws `dependency.missing`. */
export function findBinary(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  const pkg = PACKAGES[name] ?? name;
  throw new DependencyMissingError('dependency.missing', `${name} not on PATH`, {
    hint: `install it: sudo apt-get update && sudo apt-get install -y ${pkg}`,
    details: { binary: name },
  });
}
