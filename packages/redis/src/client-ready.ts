/**
 * Waiting for a node client's connection. Node clients do not queue commands while disconnected (a
 * dead node must fail fast), so a client created a moment ago would fail its first command while it
 * is still connecting. Callers that act on a fresh client wait here first.
 */
import type { Redis } from 'ioredis';

/** Options of {@link waitForClientReady}. */
export interface ClientReadyOptions {
  /** Longest wait in milliseconds. Default: the client's `connectTimeout`, or 2000. */
  timeoutMs?: number;
  /**
   * The event that ends the wait early, before `ready`:
   * - `'error'`: the first failed connection attempt (a health sample reports the node down at once);
   * - `'end'`: the client has given up reconnecting (node control waits through retries).
   */
  giveUpOn: 'error' | 'end';
}

/** The client states in which a connection is pending (`wait`: lazy, not started yet). */
const PENDING_STATUSES = ['wait', 'connecting', 'connect'];

/**
 * Resolves once `client` is ready, gives up (see {@link ClientReadyOptions.giveUpOn}) or the
 * timeout passes; never rejects. A lazy client is told to connect. A client that is not connecting
 * (ready, or closed) returns at once, and one that still cannot connect then fails its next command
 * as usual.
 *
 * @example
 * await waitForClientReady(client, { timeoutMs: 1000, giveUpOn: 'error' });
 * await client.ping();
 */
export async function waitForClientReady(
  client: Redis,
  { timeoutMs, giveUpOn }: ClientReadyOptions,
): Promise<void> {
  if (!PENDING_STATUSES.includes(client.status)) return;
  if (client.status === 'wait') client.connect().catch(() => undefined);
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      client.off(giveUpOn, done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs ?? client.options.connectTimeout ?? 2000);
    client.once('ready', done);
    client.once(giveUpOn, done);
  });
}
