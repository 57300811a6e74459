/**
 * One agent's copy of the group document: reads, the few mutations the control plane makes
 * (link states, ledger, history), and change notifications for persistence and sync. All writes
 * go through {@link GroupDocument.change}, so every change is announced exactly once.
 */
import * as A from '@automerge/automerge';
import {
  GeorepError,
  type GroupView,
  type HistoryEventView,
  type LinkState,
  type OperationView,
  type RegionMembership,
} from '@georep/core';
import { createGenesis } from './genesis.js';
import { IdempotencyConflictError, canonicalJson, newOperationId } from './ledger.js';
import { SCHEMA_VERSION, type Forced, type GroupDocShape, type OperationDoc } from './schema.js';

/** Raised when a saved document cannot be used (corrupt bytes, another group, a newer schema). */
export class DocumentLoadError extends GeorepError {
  override name = 'DocumentLoadError';
}

/** What a new operation is. */
export interface NewOperation {
  kind: string;
  params: Record<string, unknown>;
  clientToken: string | null;
  requestedVia: string;
  requestedBy: string;
  forced?: Forced | null;
}

type Listener = (origin: 'local' | 'remote') => void;

/** The document and its mutations; see the module comment. */
export class GroupDocument {
  #doc: A.Doc<GroupDocShape>;
  readonly #listeners = new Set<Listener>();

  private constructor(doc: A.Doc<GroupDocShape>) {
    this.#doc = doc;
  }

  /** A fresh document: the shared genesis, then this agent's own actor for its edits. */
  static create(group: string, founders: readonly string[]): GroupDocument {
    return new GroupDocument(A.clone(createGenesis(group, founders)));
  }

  /**
   * Loads saved bytes. Throws {@link DocumentLoadError} (`group.document-corrupt`,
   * `group.document-mismatch`, `group.schema-too-new`) instead of returning a document it would misread.
   */
  static load(bytes: Uint8Array, group: string): GroupDocument {
    let doc: A.Doc<GroupDocShape>;
    try {
      doc = A.load<GroupDocShape>(bytes);
    } catch (err) {
      throw new DocumentLoadError(
        'group.document-corrupt',
        `the saved group document is corrupt: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    // An empty or foreign file loads as an empty document: that is corruption, not another group.
    if (typeof doc.group !== 'string' || typeof doc.regions !== 'object' || doc.regions === null) {
      throw new DocumentLoadError(
        'group.document-corrupt',
        'the saved group document is empty or not a georep document',
      );
    }
    if (doc.group !== group) {
      throw new DocumentLoadError(
        'group.document-mismatch',
        `the saved document belongs to group "${String(doc.group)}", not "${group}"`,
        {
          hint: 'point dataDir at a directory of this group, or move the old file away',
        },
      );
    }
    if (doc.schema > SCHEMA_VERSION) {
      throw new DocumentLoadError(
        'group.schema-too-new',
        `the saved document has schema ${doc.schema}; this agent knows ${SCHEMA_VERSION}`,
        {
          hint: 'upgrade this agent to the version the other agents run',
        },
      );
    }
    return new GroupDocument(doc);
  }

  /** The current Automerge document (immutable snapshot). */
  get doc(): A.Doc<GroupDocShape> {
    return this.#doc;
  }

  /** Calls `listener` after every change, local or merged from a peer. Returns an unsubscribe. */
  onChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Replaces the document with one that includes it (after receiving sync messages). */
  replace(next: A.Doc<GroupDocShape>): void {
    const before = A.getHeads(this.#doc).join();
    this.#doc = next;
    if (A.getHeads(next).join() !== before) this.#emit('remote');
  }

  /** Applies a local change. */
  change(message: string, fn: (doc: GroupDocShape) => void): void {
    this.#doc = A.change(this.#doc, { message }, fn);
    this.#emit('local');
  }

  #emit(origin: 'local' | 'remote'): void {
    for (const listener of this.#listeners) listener(origin);
  }

  /** The document's heads (hashes of its latest changes); equal heads mean equal documents. */
  heads(): string[] {
    return [...A.getHeads(this.#doc)].sort();
  }

  /** The changes made after `heads` (a chunk that {@link applySaved} can load), for appending. */
  saveSince(heads: string[]): Uint8Array {
    return A.saveSince(this.#doc, heads);
  }

  /**
   * Loads saved changes (chunks of {@link saveSince}) into the document, at start. Throws when
   * the bytes are not Automerge changes.
   */
  applySaved(bytes: Uint8Array): void {
    this.#doc = A.loadIncremental(this.#doc, bytes);
  }

  /** The whole document, compacted, for saving. */
  save(): Uint8Array {
    return A.save(this.#doc);
  }

  get group(): string {
    return this.#doc.group;
  }

  get epoch(): number {
    return this.#doc.epoch.value;
  }

  /** Every member, sorted by name. */
  regions(): RegionMembership[] {
    return Object.values(this.#doc.regions)
      .map((r) => ({
        name: r.name,
        linkState: r.linkState,
        epoch: r.epoch,
        changedAt: r.changedAt,
        forced: r.forced ? { ...r.forced } : null,
      }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** One member, or undefined. */
  region(name: string): RegionMembership | undefined {
    return this.regions().find((r) => r.name === name);
  }

  /**
   * Replication watermarks: `region → peer → tag`. A region's own row holds, under its own name,
   * the newest tag it has published, and under each peer's name the newest tag of that peer it
   * has applied. Each region writes only its own row, so rows never conflict.
   */
  watermarks(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const [region, row] of Object.entries(this.#doc.watermarks ?? {}))
      out[region] = { ...row };
    return out;
  }

  /**
   * Replaces `region`'s row of watermarks. Tags only move forward: a value older than the stored
   * one is ignored (a restarted agent that has not applied anything yet). Returns false when
   * nothing changed, so that no empty change grows the document.
   */
  setWatermarks(region: string, row: Record<string, string>): boolean {
    const current = this.#doc.watermarks?.[region] ?? {};
    const next: Record<string, string> = { ...current };
    for (const [peer, tag] of Object.entries(row)) {
      if (tag > (next[peer] ?? '')) next[peer] = tag;
    }
    if (Object.entries(next).every(([peer, tag]) => current[peer] === tag)) return false;
    this.change(`${region}: watermarks`, (doc) => {
      doc.watermarks ??= {};
      // Re-read after assigning: the assigned literal is not the document's proxy.
      if (doc.watermarks[region] === undefined) doc.watermarks[region] = {};
      const stored = doc.watermarks[region];
      for (const [peer, tag] of Object.entries(next)) {
        if (stored[peer] !== tag) stored[peer] = tag;
      }
    });
    return true;
  }

  /**
   * Drops `region`'s row of watermarks: its data was replaced (`link --resync`), so what it had
   * applied before no longer holds. Until it writes a new row, the horizon is held at ''.
   */
  clearWatermarks(region: string): void {
    if (this.#doc.watermarks?.[region] === undefined) return;
    this.change(`${region}: watermarks cleared`, (doc) => {
      if (doc.watermarks !== undefined) delete doc.watermarks[region];
    });
  }

  /**
   * The garbage-collection horizon: the oldest of the watermarks of every linked region for every
   * other linked region. Every linked region has applied every other's operations up to it, and
   * tags only grow per origin, so no operation with a tag at or below it can still arrive. Empty
   * (nothing may be collected) while a linked region has not reported a watermark for a linked
   * peer. A force-unlinked or unlinked region no longer holds it back.
   */
  gcHorizon(): string {
    const linked = this.linkedRegions();
    if (linked.length < 2) return '';
    const marks = this.#doc.watermarks ?? {};
    let horizon: string | undefined;
    for (const region of linked) {
      for (const peer of linked) {
        if (peer === region) continue;
        const tag = marks[region]?.[peer] ?? '';
        if (horizon === undefined || tag < horizon) horizon = tag;
      }
    }
    return horizon ?? '';
  }

  /** Regions whose state is `linked`: the electorate of votes. */
  linkedRegions(): string[] {
    return this.regions()
      .filter((r) => r.linkState === 'linked')
      .map((r) => r.name);
  }

  /**
   * Sets a region's link state, bumps the group epoch, and records the event. Adds the region if
   * the group does not know it yet (a new member being linked).
   */
  setLinkState(
    region: string,
    state: LinkState,
    by: { region: string; operationId: string | null; forced?: Forced | null },
  ): void {
    this.change(`${region}: ${state}`, (doc) => {
      doc.epoch.increment(1);
      const now = Date.now();
      const entry = doc.regions[region];
      if (entry === undefined) {
        doc.regions[region] = {
          name: region,
          linkState: state,
          epoch: doc.epoch.value,
          changedAt: now,
          nats: [],
          maintenanceWindow: null,
          forced: by.forced ?? null,
        };
      } else {
        entry.linkState = state;
        entry.epoch = doc.epoch.value;
        entry.changedAt = now;
        entry.forced = by.forced ?? null;
      }
      doc.history.push({
        at: now,
        region: by.region,
        kind: `region.${state}`,
        message: `${region} is ${state}${by.forced ? ` (forced by ${by.forced.by}: ${by.forced.reason})` : ''}`,
        operationId: by.operationId,
      });
    });
  }

  /**
   * Creates an operation, or returns the existing one when `clientToken` was used before with
   * the same parameters. The same token with other parameters throws `idempotency-conflict`.
   */
  createOperation(request: NewOperation): { operation: OperationView; created: boolean } {
    const params = canonicalJson({ kind: request.kind, ...request.params });
    if (request.clientToken !== null) {
      const existingId = this.#doc.clientTokens[tokenKey(request.clientToken)];
      const existing = existingId === undefined ? undefined : this.#doc.operations[existingId];
      if (existing !== undefined) {
        if (
          canonicalJson({ kind: existing.kind, ...(parseJson(existing.params) ?? {}) }) !== params
        ) {
          throw new IdempotencyConflictError(request.clientToken, existing.id);
        }
        return { operation: toOperationView(existing), created: false };
      }
    }
    const id = newOperationId();
    const now = Date.now();
    this.change(`operation ${id}: ${request.kind}`, (doc) => {
      doc.operations[id] = {
        id,
        kind: request.kind,
        status: 'pending',
        params: canonicalJson(request.params),
        clientToken: request.clientToken,
        requestedVia: request.requestedVia,
        requestedBy: request.requestedBy,
        createdAt: now,
        updatedAt: now,
        startedAt: null,
        finishedAt: null,
        result: null,
        error: null,
        forced: request.forced ?? null,
      };
      if (request.clientToken !== null) doc.clientTokens[tokenKey(request.clientToken)] = id;
    });
    return { operation: this.operation(id) as OperationView, created: true };
  }

  /** The operation a client token was used for, if any. */
  operationByToken(clientToken: string): OperationView | undefined {
    const id = this.#doc.clientTokens[tokenKey(clientToken)];
    return id === undefined ? undefined : this.operation(id);
  }

  /** Moves an operation on: running, then succeeded or failed with its result or error. */
  updateOperation(
    id: string,
    update:
      | { status: 'running' }
      | { status: 'succeeded'; result: Record<string, unknown> }
      | { status: 'failed' | 'cancelled'; error: { code: string; message: string; hint?: string } },
  ): void {
    this.change(`operation ${id}: ${update.status}`, (doc) => {
      const op = doc.operations[id];
      if (op === undefined) return;
      const now = Date.now();
      op.status = update.status;
      op.updatedAt = now;
      if (update.status === 'running') op.startedAt = now;
      else op.finishedAt = now;
      if (update.status === 'succeeded') op.result = JSON.stringify(update.result);
      if (update.status === 'failed' || update.status === 'cancelled') {
        op.error = {
          code: update.error.code,
          message: update.error.message,
          hint: update.error.hint ?? null,
        };
      }
    });
  }

  /** Records an event that is not a link-state change. */
  record(event: HistoryEventView): void {
    this.change(event.kind, (doc) => {
      doc.history.push({ ...event });
    });
  }

  /** One operation, decoded, or undefined. */
  operation(id: string): OperationView | undefined {
    const op = this.#doc.operations[id];
    return op === undefined ? undefined : toOperationView(op);
  }

  /** Operations not yet finished, oldest first. */
  pendingOperations(): OperationView[] {
    return Object.values(this.#doc.operations)
      .filter((op) => op.status === 'pending' || op.status === 'running')
      .map(toOperationView)
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  /** The latest `limit` history events, oldest first. */
  history(limit = 100): HistoryEventView[] {
    const n = Math.min(Math.max(Math.trunc(limit) || 100, 1), 1000);
    return this.#doc.history.slice(-n).map((e) => ({ ...e }));
  }

  /**
   * Adds a snapshot to the catalog. `meta` is stored as one JSON value so that two agents never
   * interleave the fields of different snapshots; names are unique (they start with the region).
   */
  addSnapshot(
    name: string,
    meta: Record<string, unknown>,
    by: { region: string; operationId: string | null },
  ): void {
    this.change(`snapshot ${name}`, (doc) => {
      doc.snapshots[name] = JSON.stringify(meta);
      doc.history.push({
        at: Date.now(),
        region: by.region,
        kind: 'snapshot.added',
        message: `snapshot ${name}`,
        operationId: by.operationId,
      });
    });
  }

  /** Removes a snapshot from the catalog; false when it was not listed. */
  removeSnapshot(name: string, by: { region: string; operationId: string | null }): boolean {
    if (this.#doc.snapshots[name] === undefined) return false;
    this.change(`snapshot ${name} deleted`, (doc) => {
      delete doc.snapshots[name];
      doc.history.push({
        at: Date.now(),
        region: by.region,
        kind: 'snapshot.deleted',
        message: `snapshot ${name} deleted`,
        operationId: by.operationId,
      });
    });
    return true;
  }

  /** The catalog entry of one snapshot, or undefined. */
  snapshot(name: string): Record<string, unknown> | undefined {
    const json = this.#doc.snapshots[name];
    return json === undefined ? undefined : (parseJson(json) ?? undefined);
  }

  /** Every catalogued snapshot, newest first (by `createdAt`). */
  snapshots(): Record<string, unknown>[] {
    return Object.values(this.#doc.snapshots)
      .map((json) => parseJson(json) ?? {})
      .sort((a, b) => Number(b.createdAt ?? 0) - Number(a.createdAt ?? 0));
  }

  /** What `georep group show` prints. */
  view(answeredBy: string): GroupView {
    return {
      group: this.#doc.group,
      answeredBy,
      schema: this.#doc.schema,
      epoch: this.epoch,
      heads: this.heads(),
      regions: this.regions(),
      pendingOperations: this.pendingOperations(),
      operationCount: Object.keys(this.#doc.operations).length,
      documentBytes: this.save().byteLength,
    };
  }
}

/** Map key of a client token: prefixed, so that no token can collide with an object key like `__proto__`. */
const tokenKey = (token: string) => `t:${token}`;

/** Parses JSON written by a peer; a malformed value is shown, not thrown (it came over the network). */
function parseJson(text: string | null): Record<string, unknown> | null {
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : { value };
  } catch {
    return { unparsable: text };
  }
}

function toOperationView(op: OperationDoc): OperationView {
  return {
    id: op.id,
    kind: op.kind,
    status: op.status,
    params: parseJson(op.params) ?? {},
    clientToken: op.clientToken,
    requestedVia: op.requestedVia,
    requestedBy: op.requestedBy,
    createdAt: op.createdAt,
    updatedAt: op.updatedAt,
    startedAt: op.startedAt,
    finishedAt: op.finishedAt,
    result: parseJson(op.result),
    error:
      op.error === null
        ? null
        : {
            code: op.error.code,
            message: op.error.message,
            ...(op.error.hint === null ? {} : { hint: op.error.hint }),
          },
    forced: op.forced === null ? null : { ...op.forced },
  };
}
