/**
 * Types of the group's control plane shared by the agent and the CLI: link states, operations
 * in the ledger, history events, and the API envelope between them.
 */

/** A region's membership in the group. `force-unlinked` regions are fenced when they return. */
export type LinkState = 'linking' | 'linked' | 'unlinking' | 'unlinked' | 'force-unlinked';

/** Lifecycle of a management operation in the ledger. */
export type OperationStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** True for statuses that never change again. */
export function isTerminalStatus(status: OperationStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}

/** A management operation as the API returns it (parameters and result decoded). */
export interface OperationView {
  id: string;
  kind: string;
  status: OperationStatus;
  params: Record<string, unknown>;
  clientToken: string | null;
  requestedVia: string;
  requestedBy: string;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  result: Record<string, unknown> | null;
  error: { code: string; message: string; hint?: string } | null;
  forced: { by: string; reason: string } | null;
}

/** One entry of the group history. */
export interface HistoryEventView {
  at: number;
  region: string;
  kind: string;
  message: string;
  operationId: string | null;
}

/** A region's entry in the group document. */
export interface RegionMembership {
  name: string;
  linkState: LinkState;
  /** Group epoch of the last change of this region's link state. */
  epoch: number;
  changedAt: number;
  forced: { by: string; reason: string } | null;
}

/** What `georep group show` prints. */
export interface GroupView {
  group: string;
  answeredBy: string;
  schema: number;
  epoch: number;
  heads: string[];
  regions: RegionMembership[];
  pendingOperations: OperationView[];
  operationCount: number;
  documentBytes: number;
}

/** Reply envelope of every agent API request. */
export type ApiReply<T> = { ok: true; result: T } | { ok: false; error: SerializedError };

/** A {@link GeorepError} on the wire: `kind` names its class so the exit status survives. */
export interface SerializedError {
  kind: string;
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}
