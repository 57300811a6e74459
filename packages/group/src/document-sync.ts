/**
 * Automerge's sync protocol between this agent and every peer, over any transport that can send
 * bytes to a named peer (the agent uses NATS). One sync state per peer. Messages may be lost
 * (core NATS is at-most-once), which can leave a sync state waiting forever; so peers also
 * announce their heads (in heartbeats) and a peer whose heads keep differing from ours gets a
 * fresh sync state and a new round.
 */
import * as A from '@automerge/automerge';
import { makeLogger, type Logger } from '@georep/core';
import type { GroupDocument } from './group-document.js';

/** Sends one sync message to a peer. Must not throw (drop and log instead). */
export type SyncSend = (peer: string, message: Uint8Array) => void;

/** Options of {@link DocumentSync}. */
export interface DocumentSyncOptions {
  /** Heads differing this long (with no progress) reset the peer's sync state. */
  resetAfterMs?: number;
  now?: () => number;
  log?: Logger;
}

interface Peer {
  state: A.SyncState;
  /** When the peer's announced heads first differed from ours, or null when equal. */
  differentSince: number | null;
  lastReceivedAt: number;
}

/** Keeps this document in sync with every peer; see the module comment. */
export class DocumentSync {
  readonly #document: GroupDocument;
  readonly #send: SyncSend;
  readonly #peers = new Map<string, Peer>();
  readonly #resetAfterMs: number;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #unsubscribe: () => void;

  constructor(document: GroupDocument, send: SyncSend, options: DocumentSyncOptions = {}) {
    this.#document = document;
    this.#send = send;
    this.#resetAfterMs = options.resetAfterMs ?? 3000;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? makeLogger('group-sync');
    // Every change, local or merged, may be news to some peer.
    this.#unsubscribe = document.onChange(() => this.flushAll());
  }

  /** Peers currently synced with. */
  get peers(): string[] {
    return [...this.#peers.keys()].sort();
  }

  /** Makes the peer set equal to `peers` (new ones start a round at once). */
  setPeers(peers: Iterable<string>): void {
    const wanted = new Set(peers);
    for (const name of this.#peers.keys()) if (!wanted.has(name)) this.#peers.delete(name);
    for (const name of wanted) {
      if (this.#peers.has(name)) continue;
      this.#peers.set(name, { state: A.initSyncState(), differentSince: null, lastReceivedAt: 0 });
      this.flush(name);
    }
  }

  /** Forgets what we believed about a peer (it restarted, or messages were lost). */
  resetPeer(name: string): void {
    const peer = this.#peers.get(name);
    if (peer === undefined) return;
    peer.state = A.initSyncState();
    peer.differentSince = null;
    this.flush(name);
  }

  /** Sends the peer whatever it is missing, if anything. */
  flush(name: string): void {
    const peer = this.#peers.get(name);
    if (peer === undefined) return;
    const [state, message] = A.generateSyncMessage(this.#document.doc, peer.state);
    peer.state = state;
    if (message !== null) this.#send(name, message);
  }

  /** {@link flush} for every peer. */
  flushAll(): void {
    for (const name of this.#peers.keys()) this.flush(name);
  }

  /** Applies a message from a peer; malformed messages are logged and dropped. */
  receive(from: string, message: Uint8Array): void {
    let peer = this.#peers.get(from);
    if (peer === undefined) {
      peer = { state: A.initSyncState(), differentSince: null, lastReceivedAt: 0 };
      this.#peers.set(from, peer);
    }
    try {
      const [next, state] = A.receiveSyncMessage(this.#document.doc, peer.state, message);
      peer.state = state;
      peer.lastReceivedAt = this.#now();
      this.#document.replace(next); // announces the change, which flushes every peer
    } catch (err) {
      this.#log.warn(
        { peer: from, err: (err as Error).message },
        'dropped a malformed sync message',
      );
      return;
    }
    this.flush(from);
  }

  /**
   * Compares a peer's announced heads with ours. Equal: in sync. Different for longer than
   * `resetAfterMs`: reset that peer's sync state and start a new round.
   */
  observeHeads(from: string, heads: readonly string[]): void {
    const peer = this.#peers.get(from);
    if (peer === undefined) return;
    const ours = this.#document.heads();
    const same = heads.length === ours.length && [...heads].sort().every((h, i) => h === ours[i]);
    const now = this.#now();
    if (same) {
      peer.differentSince = null;
      return;
    }
    if (peer.differentSince === null) {
      peer.differentSince = now;
      this.flush(from);
      return;
    }
    if (now - peer.differentSince >= this.#resetAfterMs) {
      this.#log.debug({ peer: from }, 'heads still differ; restarting sync with the peer');
      this.resetPeer(from);
      peer.differentSince = now;
    }
  }

  close(): void {
    this.#unsubscribe();
    this.#peers.clear();
  }
}
