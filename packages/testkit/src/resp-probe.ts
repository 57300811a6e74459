/**
 * A minimal RESP exchange used only for readiness checks, so the testkit needs no Redis client.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';

/** How to reach a Redis node for a probe. */
export interface ProbeTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

function encode(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/**
 * Sends AUTH (when credentials are given) and PING; resolves true on `+PONG`, false on any
 * other reply (e.g. `-LOADING`), and rejects on connection errors. Gives up after `timeoutMs`.
 */
export async function redisPing(target: ProbeTarget, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket: Socket =
      target.tls === undefined
        ? netConnect({ host: target.host, port: target.port })
        : tlsConnect({
            host: target.host,
            port: target.port,
            servername: 'localhost',
            ca: target.tls.caFile === undefined ? undefined : readFileSync(target.tls.caFile),
            cert: target.tls.certFile === undefined ? undefined : readFileSync(target.tls.certFile),
            key: target.tls.keyFile === undefined ? undefined : readFileSync(target.tls.keyFile),
          });
    let buffer = '';
    const expected = target.password === undefined ? 1 : 2;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    socket.once(target.tls === undefined ? 'connect' : 'secureConnect', () => {
      const auth =
        target.password === undefined
          ? ''
          : encode(
              target.username === undefined
                ? ['AUTH', target.password]
                : ['AUTH', target.username, target.password],
            );
      socket.write(auth + encode(['PING']));
    });
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const lines = buffer.split('\r\n').filter((l) => l !== '');
      if (lines.length >= expected) done(lines[expected - 1] === '+PONG');
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
