import { createRequire } from 'node:module';

/** The agent package version, reported in heartbeats and the NATS service info. */
export const AGENT_VERSION: string = (
  createRequire(import.meta.url)('../package.json') as { version: string }
).version;
