/**
 * Validation of requests that arrive over NATS. Anyone with publish rights can send anything, so
 * nothing is acted on until it has the expected shape; a bad request gets a `usage.*` error back.
 */
import { UsageError, isValidName } from '@georep/core';
import type { Proposal } from '@georep/group';
import type { MembershipRequest } from './operations.js';
import type { ImportRequest } from './snapshot-plane.js';
import type { SwitchoverRequest } from './switchover.js';
import type { RegionalFailoverRequest } from './regional-failover.js';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(what: string, detail: string): UsageError {
  return new UsageError('usage.bad-request', `malformed ${what}: ${detail}`, {
    hint: 'use the georep CLI of the same version as the agents',
  });
}

/** Who asked, as the CLI reports it (`user@host`, at most 200 characters); else `unknown`. */
export function requestedByOf(body: Record<string, unknown>): string {
  return typeof body.requestedBy === 'string' && body.requestedBy !== ''
    ? body.requestedBy.slice(0, 200)
    : 'unknown';
}

function optionalBoolean(body: Record<string, unknown>, key: string, what: string): boolean {
  const value = body[key];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw bad(what, `${key} must be true or false`);
  return value;
}

/** A vote request. */
export function parseProposal(body: unknown): Proposal {
  if (!isObject(body)) throw bad('vote request', 'not an object');
  const { operationId, kind, target, proposer, epoch } = body;
  if (typeof operationId !== 'string' || !/^op-[a-z0-9]+-[0-9a-f]+$/.test(operationId))
    throw bad('vote request', 'operationId');
  if (kind !== 'link' && kind !== 'unlink' && kind !== 'failover' && kind !== 'failback')
    throw bad('vote request', 'kind');
  if (typeof target !== 'string' || !isValidName(target)) throw bad('vote request', 'target');
  if (typeof proposer !== 'string' || !isValidName(proposer)) throw bad('vote request', 'proposer');
  if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 0)
    throw bad('vote request', 'epoch');
  return { operationId, kind, target, proposer, epoch };
}

/** A link/unlink request of the CLI. */
export function parseMembershipRequest(body: Record<string, unknown>): MembershipRequest {
  const what = 'membership request';
  const { kind, region, reason, clientToken } = body;
  if (kind !== 'link' && kind !== 'unlink') throw bad(what, 'kind must be link or unlink');
  if (typeof region !== 'string' || !isValidName(region))
    throw bad(what, 'region must be a region name');
  if (reason !== undefined && typeof reason !== 'string') throw bad(what, 'reason must be text');
  if (clientToken !== undefined && clientToken !== null && typeof clientToken !== 'string')
    throw bad(what, 'clientToken must be text');
  return {
    kind,
    region,
    force: optionalBoolean(body, 'force', what),
    yes: optionalBoolean(body, 'yes', what),
    resync: optionalBoolean(body, 'resync', what),
    ...(reason === undefined ? {} : { reason }),
    clientToken: typeof clientToken === 'string' ? clientToken : null,
    requestedBy: requestedByOf(body),
  };
}

/** Checks a `snapshot.import` request: a catalogued name, a mode, and the optional filters. */
export function parseImportRequest(body: Record<string, unknown>): ImportRequest {
  const { name, mode, onConflict, match, db } = body;
  if (typeof name !== 'string' || name === '') throw bad('import request', 'name is required');
  if (mode !== 'replace' && mode !== 'merge') {
    throw bad('import request', 'mode must be replace or merge');
  }
  if (onConflict !== undefined && onConflict !== 'skip' && onConflict !== 'replace') {
    throw bad('import request', 'onConflict must be skip or replace');
  }
  if (match !== undefined && typeof match !== 'string') {
    throw bad('import request', 'match must be a string');
  }
  if (db !== undefined && (typeof db !== 'number' || !Number.isInteger(db) || db < 0)) {
    throw bad('import request', 'db must be an integer >= 0');
  }
  return {
    name,
    mode,
    ...(onConflict === undefined ? {} : { onConflict }),
    ...(match === undefined ? {} : { match }),
    ...(db === undefined ? {} : { db }),
  };
}

/** Checks a `switchover` request: target node ids, when and mode. */
export function parseSwitchoverRequest(body: Record<string, unknown>): SwitchoverRequest {
  const what = 'switchover request';
  const { nodes, when, mode, clientToken } = body;
  if (!Array.isArray(nodes) || nodes.some((n) => typeof n !== 'string' || n === ''))
    throw bad(what, 'nodes must be a list of node ids');
  if (nodes.length > 1000) throw bad(what, 'too many nodes');
  if (when !== undefined && when !== 'now' && when !== 'maintenance-window')
    throw bad(what, 'when must be now or maintenance-window');
  if (mode !== undefined && mode !== 'safe' && mode !== 'force')
    throw bad(what, 'mode must be safe or force');
  if (clientToken !== undefined && clientToken !== null && typeof clientToken !== 'string')
    throw bad(what, 'clientToken must be text');
  return {
    nodes: nodes as string[],
    when: when ?? 'now',
    mode: mode ?? 'safe',
    clientToken: typeof clientToken === 'string' ? clientToken : null,
    requestedBy: requestedByOf(body),
  };
}

/** Checks a `failover` (regional) or `failback` request. */
export function parseRegionalFailoverRequest(
  kind: 'failover' | 'failback',
  body: Record<string, unknown>,
): RegionalFailoverRequest {
  const what = `${kind} request`;
  const { region, to, reason, clientToken, catchUpTimeoutMs } = body;
  if (typeof region !== 'string' || !isValidName(region))
    throw bad(what, 'region must be a region name');
  if (kind === 'failover' && (typeof to !== 'string' || !isValidName(to)))
    throw bad(what, 'to must be a region name');
  if (reason !== undefined && typeof reason !== 'string') throw bad(what, 'reason must be text');
  if (clientToken !== undefined && clientToken !== null && typeof clientToken !== 'string')
    throw bad(what, 'clientToken must be text');
  if (
    catchUpTimeoutMs !== undefined &&
    (typeof catchUpTimeoutMs !== 'number' ||
      !Number.isInteger(catchUpTimeoutMs) ||
      catchUpTimeoutMs < 0)
  )
    throw bad(what, 'catchUpTimeoutMs must be a whole number of ms');
  return {
    kind,
    region,
    ...(kind === 'failover' ? { to: to as string } : {}),
    dryRun: optionalBoolean(body, 'dryRun', what),
    force: optionalBoolean(body, 'force', what),
    yes: optionalBoolean(body, 'yes', what),
    ...(reason === undefined ? {} : { reason }),
    ...(catchUpTimeoutMs === undefined ? {} : { catchUpTimeoutMs: catchUpTimeoutMs }),
    clientToken: typeof clientToken === 'string' ? clientToken : null,
    requestedBy: requestedByOf(body),
  };
}
