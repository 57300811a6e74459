/** Port bases of `georep dev`: region `i` (0-based) uses base + i (Redis: base + 10·i + node). */
export const DEV_PORTS = {
  natsClient: 4222,
  natsCluster: 5222,
  natsGateway: 7222,
  natsMonitor: 8222,
  redis: 7379,
  agentHttp: 9464,
  sentinel: 26379,
} as const;

/** Largest group the dev topology lays out (the product's limit). */
export const MAX_REGIONS = 16;

/**
 * True for a port `georep dev` may bind (its fixed ports, for up to {@link MAX_REGIONS} regions).
 * Free ports for tests avoid them: a test of `georep dev` binds them while other test files run.
 */
export function isDevPort(port: number): boolean {
  return Object.entries(DEV_PORTS).some(([name, base]) => {
    const span = name === 'redis' ? 10 * MAX_REGIONS : MAX_REGIONS;
    return port >= base && port < base + span;
  });
}
