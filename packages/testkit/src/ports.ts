/**
 * Free TCP ports on loopback for test servers.
 *
 * Ports come from below the OS's ephemeral range (Linux: 32768–60999). The OS hands ephemeral
 * ports to every outgoing connection and every `listen(0)`, and a test group opens many of both.
 * A port that the OS chose with `listen(0)` and that was then released could be handed out again
 * before the server meant for it binds it. A random port below the range, checked by binding it,
 * is only ever taken by another test that picked the same one.
 */
import { createServer } from 'node:net';
import { isDevPort } from './dev-ports.js';

/** The range ports are picked from: registered ports below Linux's ephemeral range. */
const RANGE_LOW = 20_000;
const RANGE_HIGH = 32_767;
/**
 * Test files run in parallel workers, each planning dozens of ports and binding them only as its
 * servers start: two workers picking at the same time could choose the same port, and the later
 * server fails with "address in use". Each vitest worker (`VITEST_POOL_ID`, 1-based) therefore
 * takes its own quarter of the range; other processes (benches, `georep dev`) use all of it.
 */
const SLICES = 4;

/** This process's range: its worker's slice under vitest, the whole range elsewhere. */
function range(): { low: number; high: number } {
  const pool = Number(process.env.VITEST_POOL_ID ?? 0);
  if (!Number.isInteger(pool) || pool < 1) return { low: RANGE_LOW, high: RANGE_HIGH };
  const slice = Math.floor((RANGE_HIGH - RANGE_LOW + 1) / SLICES);
  const low = RANGE_LOW + ((pool - 1) % SLICES) * slice;
  return { low, high: low + slice - 1 };
}

/** True when `port` can be bound on `host` right now. */
async function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * A free port on `host`, released before it returns. Another process could still take it before
 * the caller binds it; the launchers detect that (early exit) and the caller may retry.
 */
export async function getFreePort(host = '127.0.0.1'): Promise<number> {
  const { low, high } = range();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    // `georep dev`'s Sentinel ports lie in the range, and its test binds them at any time.
    if (!isDevPort(port) && (await canBind(port, host))) return port;
  }
  throw new Error(`no free port on ${host} between ${low} and ${high} after 200 tries`);
}

/** `count` distinct free ports. */
export async function getFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort(host));
  return [...ports];
}
