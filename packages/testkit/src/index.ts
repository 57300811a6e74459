export { getFreePort, getFreePorts } from './ports.js';
export { isDevPort } from './dev-ports.js';
export { findBinary } from './binaries.js';
export { ManagedProcess, ProcessStartError, readLogTail, isAlive } from './process.js';
export type { ProcessSpec } from './process.js';
export { redisPing } from './resp-probe.js';
export type { ProbeTarget } from './resp-probe.js';
export { RedisServer, startRedis, redisConfig } from './redis-server.js';
export type { RedisServerOptions, ServerTls } from './redis-server.js';
export {
  NatsServer,
  startNats,
  natsConfig,
  natsHealthy,
  natsJetStreamReady,
} from './nats-server.js';
export type { NatsServerOptions, NatsAuth } from './nats-server.js';
export {
  DEV_PORTS,
  MAX_REGIONS,
  planGroup,
  agentConfigFor,
  writeAgentConfigs,
  startRegion,
  startGroup,
  fetchAgentHealth,
  waitForRegionStates,
  allUp,
  LocalGroup,
} from './group.js';
export type {
  NodePlan,
  RegionPlan,
  GroupPlan,
  PlanOptions,
  AgentCommand,
  RegionProcesses,
  LaunchOptions,
  AgentHealth,
} from './group.js';
export { makeTestCertificates } from './certs.js';
export type { TestCertificates } from './certs.js';
export { waitFor, tempDir } from './wait-for.js';
export { sharedRdbFixturesDir } from './fixtures.js';
export { seededRandom } from './random.js';
