/**
 * Launches a throwaway redis-server for a test file: loopback, OS-chosen port, temp data dir,
 * readiness by PING while watching for an early exit, output kept (capped) for failure messages.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RespClient } from './resp-client.js';

/** A running server and a connected client. */
export interface TestRedis {
  port: number;
  dir: string;
  client: RespClient;
  stop(): Promise<void>;
}

const OUTPUT_CAP = 16 * 1024;

/** Asks the OS for a free port (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts redis-server with `extraArgs`; `dir` may be given to load an RDB placed there. */
export async function startRedis(
  options: { extraArgs?: string[]; dir?: string } = {},
): Promise<TestRedis> {
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'georep-rdb-')));
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    ...(options.extraArgs ?? []),
  ];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_CAP);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited: string | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = `exited with ${code ?? signal}`;
      resolve();
    });
  });
  const spawnError = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(new Error(`redis-server not on PATH (apt-get install redis-server): ${err.message}`)),
    );
  });
  void spawnError.catch(() => undefined);

  const deadline = Date.now() + 15_000;
  let client: RespClient | undefined;
  while (client === undefined) {
    if (exited !== undefined) throw new Error(`redis-server ${exited} before ready:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server not ready after 15 s:\n${output}`);
    }
    try {
      const c = await Promise.race([RespClient.connect(port), spawnError]);
      const pong = await c.send('PING');
      if (pong === 'PONG') client = c;
      else c.close();
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const ready = client;
  return {
    port,
    dir,
    client: ready,
    async stop() {
      ready.close();
      if (exited === undefined) {
        child.kill('SIGTERM');
        await exitedPromise;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
