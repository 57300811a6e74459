/**
 * The agent API verbs of snapshots (`snapshot.*`): export and import run as operations in the
 * ledger (idempotent by client token) on the agent of the region they concern; list reads the
 * catalog of the group document. Exports and imports are refused while the region is switching.
 */
import type { GroupPlane } from './group-plane.js';
import { parseImportRequest, requestedByOf } from './api-requests.js';
import type { OperationRunner } from './operations.js';
import type { SnapshotPlane } from './snapshot-plane.js';

/** Verbs served on `georep.<group>.api.<verb>` and the region's API subjects. */
export const SNAPSHOT_API_VERBS = [
  'snapshot.export',
  'snapshot.list',
  'snapshot.delete',
  'snapshot.import',
] as const;

/** What the snapshot verbs need from the agent. */
export interface SnapshotApiContext {
  region: string;
  plane: GroupPlane;
  runner: OperationRunner;
  snapshots: SnapshotPlane;
  /** Throws `region.busy` while a switchover or failover runs in the region. */
  assertNotBusy: (what: string) => void;
}

/** Answers one `snapshot.*` verb. */
export function snapshotApi(
  ctx: SnapshotApiContext,
  verb: string,
  body: Record<string, unknown>,
): unknown {
  switch (verb) {
    case 'snapshot.export': {
      ctx.assertNotBusy('a snapshot export');
      const node = ctx.snapshots.chooseNode(typeof body.node === 'string' ? body.node : undefined);
      const name = typeof body.name === 'string' ? body.name : undefined;
      return ctx.runner.submitTask(
        'snapshot.export',
        // The request, not the chosen node: a retry with the same token must match.
        {
          region: ctx.region,
          node: typeof body.node === 'string' ? body.node : null,
          name: name ?? null,
        },
        {
          clientToken: typeof body.clientToken === 'string' ? body.clientToken : null,
          requestedBy: requestedByOf(body),
        },
        async (operationId) => ({
          ...(await ctx.snapshots.export(name === undefined ? {} : { name }, node, operationId)),
        }),
      );
    }
    case 'snapshot.import': {
      const request = parseImportRequest(body);
      ctx.assertNotBusy('a snapshot import');
      return ctx.runner.submitTask(
        'snapshot.import',
        { region: ctx.region, ...request },
        {
          clientToken: typeof body.clientToken === 'string' ? body.clientToken : null,
          requestedBy: requestedByOf(body),
        },
        async () => {
          const r = await ctx.snapshots.import(request);
          // A summary: the ledger is in the group document, which keeps history.
          return {
            keysRead: r.keysRead,
            keysWritten: r.keysWritten,
            restored: r.restored,
            viaCommands: r.viaCommands,
            skippedExpired: r.skippedExpired,
            skippedExisting: r.skippedExisting,
            skippedFiltered: r.skippedFiltered,
            skippedUnsupported: r.skippedUnsupported.length,
            flushed: r.flushed,
            bytes: r.bytes,
          };
        },
      );
    }
    case 'snapshot.list':
      return { snapshots: ctx.plane.document.snapshots(), location: ctx.snapshots.location };
    case 'snapshot.delete': {
      const name = String(body.name);
      return ctx.runner.submitTask(
        'snapshot.delete',
        { region: ctx.region, name },
        { requestedBy: requestedByOf(body) },
        async (operationId) => ({
          deleted: await ctx.snapshots.delete(name, operationId),
          name,
        }),
      );
    }
    default:
      return undefined;
  }
}
