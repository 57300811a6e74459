/** Helpers of the end-to-end suites: run the real `georep` binary as a user would. */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ManagedProcess,
  agentConfigFor,
  fetchAgentHealth,
  getFreePort,
  waitFor,
  type GroupPlan,
} from '@georep/testkit';

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

/** A second agent of a region (a standby): its own data directory and HTTP port, no Sentinel. */
export interface TwinAgent {
  process: ManagedProcess;
  httpPort: number;
  dir: string;
  logFile: string;
}

/**
 * Starts a second agent for `regionName` of `plan` in `dir` and waits until it reports healthy.
 * The caller stops it (`twin.process.stop()`).
 */
export async function startTwinAgent(
  plan: GroupPlan,
  regionName: string,
  dir: string,
): Promise<TwinAgent> {
  const region = plan.regions.find((r) => r.name === regionName);
  if (region === undefined) throw new Error(`region ${regionName} is not in the plan`);
  mkdirSync(dir, { recursive: true });
  const httpPort = await getFreePort();
  const configFile = join(dir, 'agent.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      ...agentConfigFor(plan, region),
      dataDir: dir,
      http: { host: '127.0.0.1', port: httpPort },
      sentinel: false,
    }),
  );
  const { command, args } = agentCommand(configFile);
  const logFile = join(dir, 'agent.log');
  const process = await ManagedProcess.start({
    name: `agent ${regionName} (twin)`,
    command,
    args,
    logFile,
    ready: async () => (await fetchAgentHealth('127.0.0.1', httpPort)) !== null,
  });
  await waitFor(
    () => fetchAgentHealth('127.0.0.1', httpPort),
    (h) => h?.ok === true,
    { timeoutMs: 20_000, what: `the twin agent of ${regionName} healthy` },
  );
  return { process, httpPort, dir, logFile };
}
