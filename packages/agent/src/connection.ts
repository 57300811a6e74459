/**
 * The light entry point `@georep/agent/connection`: what the CLI needs to talk to agents
 * (NATS connections, the version) without loading the daemon's logging, metrics and Redis
 * clients, which would double the CLI's start-up time.
 */
export { connectNats, natsConnectionOptions } from './nats-connection.js';
export type { ConnectNatsOptions } from './nats-connection.js';
export { AGENT_VERSION } from './version.js';
