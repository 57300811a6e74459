/** A status report as the agent of eu-west answers it, with one region; tests add what they show. */
import type { RegionStatus, StatusReport } from '@georep/core';

export function reportWith(region: Partial<RegionStatus>): StatusReport {
  return {
    v: 1,
    group: 'g',
    answeredBy: 'eu-west',
    generatedAt: 0,
    downAfterMs: 5000,
    regions: [
      {
        name: 'eu-west',
        state: 'up',
        linkState: 'linked',
        heartbeatAgeMs: 0,
        seenUpBy: ['eu-west'],
        seenSuspectBy: [],
        primary: null,
        nodes: [],
        agent: null,
        ...region,
      },
    ],
  };
}
