/** Free TCP ports on loopback, chosen by the OS. */
import { createServer } from 'node:net';

/**
 * Asks the OS for a free port on `host` and releases it. Another process could take it before
 * the caller binds it; the launchers detect that (early exit) and the caller may retry.
 */
export async function getFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports. */
export async function getFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort(host));
  return [...ports];
}
