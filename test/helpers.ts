/** Helpers of the end-to-end suites: run the real `georep` binary as a user would. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI entry point (npm test builds before running the suites). */
export const GEOREP_BIN = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));

/** The outcome of one `georep` run. */
export interface GeorepRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `georep ...args` in a child process and resolves with its exit status and output. */
export async function georep(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<GeorepRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [GEOREP_BIN, ...args],
      {
        env: { ...process.env, ...options.env },
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 90_000,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** How `georep dev` and the suites run an agent: this CLI in a child process. */
export const agentCommand = (configFile: string) => ({
  command: process.execPath,
  args: [GEOREP_BIN, 'agent', '--config', configFile],
});
