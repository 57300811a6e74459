/**
 * Operation ledger rules: client tokens, canonical parameters, and the idempotency check. The
 * document mutations themselves live in {@link GroupDocument}.
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, UsageError } from '@georep/core';

/** Client tokens are 1-127 printable ASCII characters (as in the managed services' APIs). */
const TOKEN = /^[\x20-\x7e]{1,127}$/;

/** Throws `usage.invalid-client-token` unless `token` is 1-127 printable ASCII characters. */
export function validateClientToken(token: string): string {
  if (!TOKEN.test(token)) {
    throw new UsageError(
      'usage.invalid-client-token',
      'a client token is 1-127 printable ASCII characters',
      {
        hint: 'use for example a UUID or "deploy-2026-11-23-1"',
      },
    );
  }
  return token;
}

/** JSON with object keys sorted at every level, so equal parameter sets give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : v,
  );
}

/** The same client token was used with different parameters. */
export class IdempotencyConflictError extends ConflictError {
  override name = 'ConflictError';
  constructor(token: string, operationId: string) {
    super(
      'idempotency-conflict',
      `client token "${token}" was already used for operation ${operationId} with other parameters`,
      {
        hint: 'use a new client token for a different request, or repeat the original request exactly',
        details: { clientToken: token, operationId },
      },
    );
  }
}

/** A new operation id: time-ordered, unique (`op-<base36 ms>-<8 hex>`). */
export function newOperationId(now = Date.now()): string {
  return `op-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}
