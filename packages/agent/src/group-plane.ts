/**
 * The agent's control plane: its copy of the group document (loaded from and saved to the data
 * directory), Automerge sync with every peer over NATS, its vote, and fencing. When the document
 * says this region was force-unlinked, the agent is fenced: it says so in `status` and its logs,
 * and (once the data plane exists) replicates nothing in either direction.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { headers, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  isTerminalStatus,
  isValidName,
  makeLogger,
  type GroupSubjects,
  type LinkState,
  type Logger,
} from '@georep/core';
import {
  DocumentSaver,
  DocumentSync,
  GroupDocument,
  Voter,
  openDocument,
  writeFileAtomic,
  type Ballot,
  type Grant,
  type GrantStore,
  type Proposal,
} from '@georep/group';
import { CHUNK_HEADER, ChunkReassembler, splitMessage } from './sync-chunks.js';

const FROM_HEADER = 'Georep-From';

/** The voter's grant in `<dataDir>/vote.json`, so that a restart does not forget a promise. */
function grantStore(dataDir: string, log: Logger): GrantStore {
  const file = join(dataDir, 'vote.json');
  return {
    load: () => {
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as Grant | null;
      } catch {
        return null;
      }
    },
    save: (grant) => {
      try {
        mkdirSync(dataDir, { recursive: true });
        writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(grant)));
      } catch (err) {
        log.warn({ file, err: (err as Error).message }, 'could not save the vote grant');
      }
    },
  };
}

/** Options of {@link GroupPlane}. */
export interface GroupPlaneOptions {
  group: string;
  region: string;
  /** Founding regions (the configuration's `regions`): the shared genesis is built from them. */
  founders: readonly string[];
  /** Where the document is saved; without it the document lives in memory only. */
  dataDir: string | undefined;
  subjects: GroupSubjects;
}

/** See the module comment. */
export class GroupPlane {
  readonly document: GroupDocument;
  readonly voter: Voter;
  readonly #opts: GroupPlaneOptions;
  readonly #log: Logger;
  readonly #saver: DocumentSaver | null;
  readonly #sync: DocumentSync;
  #nc: NatsConnection | null = null;
  #subscription: Subscription | null = null;
  #fenced = false;
  readonly #chunks = new ChunkReassembler();

  constructor(options: GroupPlaneOptions) {
    this.#opts = options;
    this.#log = makeLogger('group');
    if (options.dataDir === undefined) {
      this.#log.warn(
        {},
        'no dataDir configured: the group document is kept in memory only and rebuilt from peers on restart',
      );
      this.document = GroupDocument.create(options.group, options.founders);
      this.#saver = null;
    } else {
      const opened = openDocument(options.dataDir, options.group, options.founders, this.#log);
      this.document = opened.document;
      this.#saver = new DocumentSaver(this.document, options.dataDir, { log: this.#log });
    }
    this.voter = new Voter(
      options.region,
      options.dataDir === undefined ? {} : { store: grantStore(options.dataDir, this.#log) },
    );
    this.#sync = new DocumentSync(this.document, (peer, message) => this.#send(peer, message), {
      log: this.#log,
    });
    this.document.onChange(() => this.#checkFencing());
    this.#checkFencing();
  }

  /** This region's link state in the document (null when the document does not list it). */
  get linkState(): LinkState | null {
    return this.document.region(this.#opts.region)?.linkState ?? null;
  }

  /** True while this region is force-unlinked: it must neither send nor apply writes. */
  get fenced(): boolean {
    return this.#fenced;
  }

  /** Starts syncing over `nc` (call again after a reconnect is not needed: subscriptions survive). */
  attach(nc: NatsConnection): void {
    this.#nc = nc;
    this.#subscription = nc.subscribe(this.#opts.subjects.docSync(this.#opts.region), {
      callback: (err, msg) => {
        if (err !== null) return;
        const from = msg.headers?.get(FROM_HEADER) ?? '';
        // Only names that can be regions; the sync itself drops malformed bytes.
        if (!isValidName(from) || from === this.#opts.region) return;
        try {
          const chunk = msg.headers?.get(CHUNK_HEADER) ?? '';
          const data = chunk === '' ? msg.data : this.#chunks.add(from, chunk, msg.data);
          if (data !== null) this.#sync.receive(from, data);
        } catch (err) {
          this.#log.warn({ peer: from, err: (err as Error).message }, 'dropped a sync message');
        }
      },
    });
  }

  /** Keeps the sync peer set to every region of the document and of the health plane. */
  updatePeers(healthRegions: Iterable<string>): void {
    const peers = new Set([...this.document.regions().map((r) => r.name), ...healthRegions]);
    peers.delete(this.#opts.region);
    this.#sync.setPeers(peers);
  }

  /** A peer announced its heads (in its heartbeat). */
  observeHeads(peer: string, heads: readonly string[]): void {
    this.#sync.observeHeads(peer, heads);
  }

  /** A peer agent restarted: its sync state starts over. */
  peerRestarted(peer: string): void {
    this.#sync.resetPeer(peer);
  }

  /** This agent's ballot on a proposal. */
  vote(proposal: Proposal): Ballot {
    return this.voter.vote(proposal, {
      epoch: this.document.epoch,
      selfLinked: this.linkState === 'linked',
      proposerLinked: this.document.region(proposal.proposer)?.linkState === 'linked',
      finished: (id) => {
        const status = this.document.operation(id)?.status;
        return status !== undefined && isTerminalStatus(status);
      },
    });
  }

  #send(peer: string, message: Uint8Array): void {
    const nc = this.#nc;
    if (nc === null || nc.isClosed()) return;
    try {
      // Leave room for the headers under the server's max_payload.
      const max = Math.max(1024, (nc.info?.max_payload ?? 1024 * 1024) - 4096);
      const pieces = splitMessage(message, max);
      const id = pieces.length > 1 ? randomBytes(6).toString('hex') : '';
      pieces.forEach((piece, index) => {
        const h = headers();
        h.set(FROM_HEADER, this.#opts.region);
        if (pieces.length > 1) h.set(CHUNK_HEADER, `${id}/${index}/${pieces.length}`);
        nc.publish(this.#opts.subjects.docSync(peer), piece, { headers: h });
      });
    } catch (err) {
      this.#log.warn(
        { peer, bytes: message.byteLength, err: (err as Error).message },
        'could not send a sync message',
      );
    }
  }

  #checkFencing(): void {
    const entry = this.document.region(this.#opts.region);
    const fenced = entry?.linkState === 'force-unlinked';
    if (fenced === this.#fenced) return;
    this.#fenced = fenced;
    if (fenced) {
      this.#log.warn(
        { forced: entry?.forced ?? null, epoch: entry?.epoch },
        `this region was force-unlinked from group ${this.#opts.group}${entry?.forced ? ` by ${entry.forced.by} (${entry.forced.reason})` : ''}; ` +
          `it is fenced: nothing is replicated to or from it, and writes made here are not merged. ` +
          `To rejoin, run from any region: georep link ${this.#opts.region} --resync --yes (this region's data is then replaced by the group's)`,
      );
    } else {
      this.#log.info({ linkState: entry?.linkState ?? null }, 'this region is no longer fenced');
    }
  }

  /** Saves the document and stops syncing. */
  close(): void {
    this.#subscription?.unsubscribe();
    this.#sync.close();
    this.#saver?.close();
  }
}
