/**
 * The small I/O pieces of a replica link: opening the TCP/TLS socket, encoding handshake
 * commands, and reading `repl-stream-db` from a spooled RDB. `@georep/redis` has the same socket
 * and encoding code privately in its replication client; both should move there (see README).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { parseRdb } from '@georep/rdb';
import { tlsOptionsFrom, type SpoolFile } from '@georep/redis';
import { CaptureConnectionError, CaptureTimeoutError } from './capture-errors.js';
import type { ReplicaLinkOptions } from './replica-link.js';

/** Encodes a command as a RESP array, so passwords with any bytes are sent intact. */
export function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) parts.push(`$${Buffer.byteLength(a)}\r\n${a}\r\n`);
  return Buffer.from(parts.join(''));
}

export async function openSocket(
  options: Pick<ReplicaLinkOptions, 'node' | 'config' | 'connectMs'>,
): Promise<Socket> {
  const { node, config, connectMs } = options;
  return new Promise<Socket>((resolve, reject) => {
    const socket =
      config.tls === undefined
        ? netConnect({ host: node.host, port: node.port, noDelay: true })
        : tlsConnect({ host: node.host, port: node.port, ...tlsOptionsFrom(config.tls) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CaptureTimeoutError(node, 'connecting', connectMs));
    }, connectMs);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new CaptureConnectionError(node, 'could not be opened', { cause: err }));
    };
    socket.once(config.tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
    socket.once('error', onError);
  });
}

/** Reads the `repl-stream-db` AUX field at the head of a spooled RDB (0 when absent). */
export async function streamDbOf(spool: SpoolFile): Promise<number> {
  await spool.flushed();
  for await (const rec of parseRdb(spool.read(), { decodeValues: false, verifyChecksum: false })) {
    if (rec.kind === 'header') continue;
    if (rec.kind !== 'aux') break;
    if (rec.name === 'repl-stream-db') {
      const db = Number(rec.value.toString('latin1'));
      return Number.isSafeInteger(db) && db >= 0 ? db : 0;
    }
  }
  return 0;
}
