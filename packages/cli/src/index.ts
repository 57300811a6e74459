export { makeProgram, runCli, reportError } from './program.js';
export { renderStatus } from './commands/status.js';
export { DEFAULT_DEV_DIR, DEFAULT_DEV_GROUP, DEFAULT_DEV_REGIONS } from './commands/dev.js';
export { DEFAULT_NATS_URL } from './global-options.js';
export type { DevCluster, DevRegion } from './dev-state.js';
