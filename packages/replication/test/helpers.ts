/** Shared helpers of the capture tests: a background consumer and INFO figures. */
import { Redis } from 'ioredis';
import { parseInfo } from '@georep/redis';
import { waitFor, type RedisServer } from '@georep/testkit';
import type { CaptureCommand, CaptureEvent, CaptureStream } from '@georep/replication';

/** Consumes a capture in the background, keeping every event (each is acked by the next pull). */
export class Collector {
  readonly events: CaptureEvent[] = [];
  readonly done: Promise<unknown>;

  constructor(readonly capture: CaptureStream) {
    this.done = (async () => {
      for await (const ev of capture) this.events.push(ev);
    })().then(
      () => undefined,
      (err: unknown) => err,
    );
  }

  get commands(): CaptureCommand[] {
    return this.events.filter((e): e is CaptureCommand => e.type === 'command');
  }

  of<T extends CaptureEvent['type']>(type: T): Array<Extract<CaptureEvent, { type: T }>> {
    return this.events.filter((e): e is Extract<CaptureEvent, { type: T }> => e.type === type);
  }

  /** Waits until `ok(events)` holds. */
  async until(ok: (c: Collector) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    // Poll a boolean, so a timeout message does not print every event.
    await waitFor(
      () => ok(this),
      (done) => done,
      {
        timeoutMs,
        intervalMs: 20,
        what: `${what} (events: ${this.events
          .map((e) => e.type)
          .join(',')
          .slice(-300)})`,
      },
    );
  }

  /** Waits until the processed position reaches the node's current master_repl_offset. */
  async caughtUp(client: Redis, timeoutMs = 15_000): Promise<number> {
    let target = 0;
    await waitFor(
      async () => {
        target = await replOffset(client);
        return this.capture.position?.offset ?? -1;
      },
      (off) => off === target,
      { timeoutMs, intervalMs: 20, what: 'capture to reach master_repl_offset' },
    );
    return target;
  }
}

/** `master_repl_offset` of the node. */
export async function replOffset(client: Redis): Promise<number> {
  const info = parseInfo(await client.info('replication'));
  return Number(info['replication']?.['master_repl_offset']);
}

/** INFO replication as a map. */
export async function replInfo(client: Redis): Promise<Record<string, string>> {
  return parseInfo(await client.info('replication'))['replication'] ?? {};
}

/** A plain client for a test server. */
export function clientOf(server: RedisServer, extra: Record<string, unknown> = {}): Redis {
  return new Redis({ host: server.host, port: server.port, lazyConnect: false, ...extra });
}

export const nodeOf = (s: RedisServer) => ({ host: s.host, port: s.port });

/** Commands as `db name key1 key2 ...` strings, easy to compare. */
export const str = (b: Buffer) => b.toString('latin1');
