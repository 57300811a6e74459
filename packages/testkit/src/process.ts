/**
 * One server process launched by the testkit: logs go to a file (so detached processes keep
 * logging after the launcher exits), readiness is polled while watching for an early exit, and a
 * failure shows the tail of the log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { GeorepError, TimeoutError } from '@georep/core';

/** What to run and how to tell it is ready. */
export interface ProcessSpec {
  /** Short name for messages, e.g. `redis eu-west-1`. */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended here. */
  logFile: string;
  /** Resolves true once the process serves requests. Called repeatedly until the deadline. */
  ready: () => Promise<boolean>;
  readyTimeoutMs?: number;
  /** Survive the launching process (used by `georep dev`). */
  detached?: boolean;
}

const LOG_TAIL_BYTES = 4000;

/** The last few KB of a log file, for error messages. */
export function readLogTail(logFile: string, bytes = LOG_TAIL_BYTES): string {
  try {
    const text = readFileSync(logFile, 'utf8');
    return text.length > bytes ? `...${text.slice(-bytes)}` : text;
  } catch {
    return '(no log)';
  }
}

/** Raised when a launched server exits or never becomes ready; the message holds its log tail. */
export class ProcessStartError extends GeorepError {
  override name = 'ProcessStartError';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * True while a process with this pid runs (signal 0 probes without sending anything). A zombie
 * counts as gone: detached processes outlive their launcher and are reaped by PID 1, which in
 * some containers never reaps.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may contain spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (not Linux): trust the signal probe
  }
}

/** A running server process. `await using` stops it. */
export class ManagedProcess implements AsyncDisposable {
  readonly spec: ProcessSpec;
  readonly pid: number;
  #child: ChildProcess;
  #exited: Promise<number | null>;
  #exitCode: number | null | undefined = undefined;

  private constructor(spec: ProcessSpec, child: ChildProcess) {
    this.spec = spec;
    this.#child = child;
    if (child.pid === undefined)
      throw new ProcessStartError('testkit.spawn-failed', `could not start ${spec.name}`);
    this.pid = child.pid;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exitCode = code ?? (signal === null ? null : -1);
        resolve(this.#exitCode);
      });
    });
  }

  /** Spawns the process and waits until `spec.ready()` holds, or throws with the log tail. */
  static async start(spec: ProcessSpec): Promise<ManagedProcess> {
    const fd = openSync(spec.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(spec.command, spec.args, {
        cwd: spec.cwd,
        env: spec.env ?? process.env,
        stdio: ['ignore', fd, fd],
        detached: spec.detached === true,
      });
    } finally {
      closeSync(fd);
    }
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const proc = new ManagedProcess(spec, child);
    if (spec.detached === true) child.unref();
    const deadline = Date.now() + (spec.readyTimeoutMs ?? 15_000);
    for (;;) {
      const failed = await Promise.race([spawnError, sleep(0).then(() => undefined)]);
      if (failed !== undefined) {
        throw new ProcessStartError(
          'testkit.spawn-failed',
          `could not start ${spec.name}: ${failed.message}`,
          {
            cause: failed,
          },
        );
      }
      if (proc.#exitCode !== undefined) {
        throw new ProcessStartError(
          'testkit.exited-early',
          `${spec.name} exited with ${String(proc.#exitCode)} before it was ready; log:\n${readLogTail(spec.logFile)}`,
          { details: { logFile: spec.logFile } },
        );
      }
      if (await spec.ready().catch(() => false)) return proc;
      if (Date.now() > deadline) {
        await proc.kill();
        throw new TimeoutError(
          'testkit.not-ready',
          `${spec.name} was not ready after ${spec.readyTimeoutMs ?? 15_000} ms; log:\n${readLogTail(spec.logFile)}`,
          { details: { logFile: spec.logFile } },
        );
      }
      await sleep(50);
    }
  }

  /** False once the process exited. */
  get running(): boolean {
    return this.#exitCode === undefined;
  }

  /** Graceful stop: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Hard kill (an outage): SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#child.kill('SIGKILL');
    await this.#exited;
  }

  /** The tail of this process's log. */
  logTail(bytes?: number): string {
    return readLogTail(this.spec.logFile, bytes);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
