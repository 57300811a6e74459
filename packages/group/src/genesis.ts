/**
 * The first changes of a group's document, identical on every agent so that documents started
 * independently share their root:
 *
 * 1. the **root**, built from the group name and schema only, with a fixed actor and timestamp:
 *    the empty maps and lists every other change writes into;
 * 2. the **founders**, one change on top of the root (actor and timestamp fixed too) that adds
 *    each founding region as `linked`.
 *
 * Agents configured with the same founders build byte-identical changes. Agents configured with
 * different lists still share the root, so their founders changes merge key by key (one entry
 * per region) and never replace a whole map: no operation or history can be lost that way. An
 * agent that lost its saved document rebuilds the same changes and gets the rest from its peers.
 */
import { createHash } from 'node:crypto';
import * as A from '@automerge/automerge';
import { SCHEMA_VERSION, type GroupDocShape } from './schema.js';

const actorOf = (input: unknown) =>
  createHash('sha256').update(JSON.stringify(input)).digest('hex').slice(0, 32);

/** The actor id of the root change of `group`. */
export function rootActor(group: string): string {
  return actorOf({ schema: SCHEMA_VERSION, group, part: 'root' });
}

/** The actor id of the founders change (depends on the sorted founders). */
export function genesisActor(group: string, regions: readonly string[]): string {
  return actorOf({
    schema: SCHEMA_VERSION,
    group,
    regions: [...new Set(regions)].sort(),
    part: 'founders',
  });
}

/** The genesis document: the shared root plus every founding region `linked` at epoch 0. */
export function createGenesis(group: string, regions: readonly string[]): A.Doc<GroupDocShape> {
  const founders = [...new Set(regions)].sort();
  const root = A.change(
    A.init<GroupDocShape>({ actor: rootActor(group) }),
    { message: 'root', time: 0 },
    (doc) => {
      doc.schema = SCHEMA_VERSION;
      doc.group = group;
      doc.epoch = new A.Counter(0);
      doc.regions = {};
      doc.operations = {};
      doc.clientTokens = {};
      doc.history = [];
      doc.watermarks = {};
      doc.snapshots = {};
      doc.schedules = {};
    },
  );
  return A.change(
    A.clone(root, { actor: genesisActor(group, founders) }),
    { message: 'founders', time: 0 },
    (doc) => {
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
    },
  );
}
