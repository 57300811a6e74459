/**
 * NATS subject names. All georep traffic of a group lives under `georep.<group>.`, so one
 * NATS account can carry several groups and permissions can be granted per group.
 */

/** The name every agent registers with the NATS services framework. */
export const SERVICE_NAME = 'georep-agent';

/** Subject names of one group. */
export interface GroupSubjects {
  /** Where the agent of `region` publishes its heartbeat (core NATS, not persisted). */
  heartbeat(region: string): string;
  /** Wildcard over every region's heartbeat. */
  readonly allHeartbeats: string;
  /** Status request answered by any one agent of the group (queue group; local region first). */
  readonly status: string;
  /** Status request answered by the agent of one region. */
  regionStatus(region: string): string;
  /** Group-document sync messages addressed to the agent of `region` (binary, `Georep-From` header). */
  docSync(region: string): string;
  /** Vote requests addressed to the agent of `region`. */
  vote(region: string): string;
  /** Agent API verbs answered by any agent (`group.show`, `op.submit`, `op.get`, `history`). */
  api(verb: string): string;
  /** Agent API verbs answered by the agent of `region`. */
  regionApi(region: string, verb: string): string;
}

/** Builds the subjects of group `group`. */
export function groupSubjects(group: string): GroupSubjects {
  const root = `georep.${group}`;
  return {
    heartbeat: (region) => `${root}.hb.${region}`,
    allHeartbeats: `${root}.hb.*`,
    status: `${root}.status`,
    regionStatus: (region) => `${root}.region.${region}.status`,
    docSync: (region) => `${root}.region.${region}.doc`,
    vote: (region) => `${root}.region.${region}.vote`,
    api: (verb) => `${root}.api.${verb}`,
    regionApi: (region, verb) => `${root}.region.${region}.api.${verb}`,
  };
}
