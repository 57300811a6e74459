/** Test helpers: polling until a condition holds, and temporary directories. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Calls `fn` every `intervalMs` until `ok(value)` holds and returns that value. Errors thrown by
 * `fn` count as "not yet". Fails after `timeoutMs` with the last value or error in the message.
 */
export async function waitFor<T>(
  fn: () => Promise<T> | T,
  ok: (value: T) => boolean = () => true,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (ok(value)) return value;
      last = value;
    } catch (err) {
      last = err instanceof Error ? `error: ${err.message}` : err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${options.what ?? 'condition'} not met within ${options.timeoutMs ?? 10_000} ms; last: ${JSON.stringify(last)}`,
      );
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
}

/** A fresh temporary directory named after `name`. */
export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `georep-${name}-`));
}
