/**
 * The first change of a group's document. Every agent builds it from the same inputs (group name
 * and the sorted list of founding regions) with a fixed actor id and timestamp, so it is byte for
 * byte the same change everywhere: documents started independently by different agents share
 * their root and merge without conflicts. An agent that lost its saved document rebuilds the same
 * genesis and gets the rest from its peers.
 */
import { createHash } from 'node:crypto';
import * as A from '@automerge/automerge';
import { SCHEMA_VERSION, type GroupDocShape } from './schema.js';

/** The actor id of the genesis change: a hash of its inputs (32 hex characters). */
export function genesisActor(group: string, regions: readonly string[]): string {
  const input = JSON.stringify({ schema: SCHEMA_VERSION, group, regions: [...regions].sort() });
  return createHash('sha256').update(input).digest('hex').slice(0, 32);
}

/** The genesis document: every founding region `linked` at epoch 0. */
export function createGenesis(group: string, regions: readonly string[]): A.Doc<GroupDocShape> {
  const founders = [...new Set(regions)].sort();
  const empty = A.init<GroupDocShape>({ actor: genesisActor(group, founders) });
  return A.change(empty, { message: 'genesis', time: 0 }, (doc) => {
    doc.schema = SCHEMA_VERSION;
    doc.group = group;
    doc.epoch = 0;
    doc.regions = {};
    for (const name of founders) {
      doc.regions[name] = {
        name,
        linkState: 'linked',
        epoch: 0,
        changedAt: 0,
        nats: [],
        maintenanceWindow: null,
        forced: null,
      };
    }
    doc.operations = {};
    doc.clientTokens = {};
    doc.history = [];
    doc.watermarks = {};
    doc.snapshots = {};
    doc.schedules = {};
  });
}
