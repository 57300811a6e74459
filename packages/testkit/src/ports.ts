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

/** The range ports are picked from: registered ports below Linux's ephemeral range. */
const LOW = 20_000;
const HIGH = 32_767;

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
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (await canBind(port, host)) return port;
  }
  throw new Error(`no free port on ${host} between ${LOW} and ${HIGH} after 200 tries`);
}

/** `count` distinct free ports. */
export async function getFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort(host));
  return [...ports];
}
