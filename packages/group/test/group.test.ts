import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as A from '@automerge/automerge';
import { describe, expect, it } from 'vitest';
import { ConflictError, UsageError, silentLogger } from '@georep/core';
import {
  CHANGES_FILE,
  DOCUMENT_FILE,
  DocumentSaver,
  DocumentSync,
  GroupDocument,
  Voter,
  collectVotes,
  createGenesis,
  openDocument,
  quorumFor,
  validateClientToken,
} from '@georep/group';
import { tempDir } from '@georep/testkit';

const founders = ['eu-west', 'us-east', 'ap-south'];
const request = (params: Record<string, unknown>, clientToken: string | null = null) => ({
  kind: 'unlink',
  params,
  clientToken,
  requestedVia: 'eu-west',
  requestedBy: 'test',
});

describe('group document', () => {
  it('genesis - agents that start independently build the same genesis and merge without conflicts', () => {
    const a = GroupDocument.create('orders', founders);
    const b = GroupDocument.create('orders', [...founders].reverse());
    expect(a.heads()).toEqual(b.heads());
    a.setLinkState('ap-south', 'unlinking', { region: 'eu-west', operationId: null });
    b.record({ at: 1, region: 'us-east', kind: 'note', message: 'hello', operationId: null });
    const merged = A.merge(A.clone(a.doc), b.doc);
    expect(merged.regions['ap-south']?.linkState).toBe('unlinking');
    expect(merged.history.map((h) => h.kind).sort()).toEqual(['note', 'region.unlinking']);
    expect(A.getConflicts(merged, 'regions')).toBeUndefined();
    expect(createGenesis('orders', founders).regions['eu-west']?.linkState).toBe('linked');
  });

  it('ledger - the same client token with the same parameters returns the existing operation', () => {
    const doc = GroupDocument.create('orders', founders);
    const first = doc.createOperation(request({ region: 'ap-south', force: false }, 'deploy-1'));
    const again = doc.createOperation(request({ force: false, region: 'ap-south' }, 'deploy-1'));
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.operation.id).toBe(first.operation.id);
    expect(doc.view('eu-west').operationCount).toBe(1);
  });

  it('ledger - the same client token with other parameters fails with idempotency-conflict', () => {
    const doc = GroupDocument.create('orders', founders);
    doc.createOperation(request({ region: 'ap-south' }, 'deploy-1'));
    let error: unknown;
    try {
      doc.createOperation(request({ region: 'us-east' }, 'deploy-1'));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).code).toBe('idempotency-conflict');
  });

  it('ledger - client tokens are 1-127 printable ASCII characters', () => {
    expect(validateClientToken('a')).toBe('a');
    expect(validateClientToken('x'.repeat(127))).toHaveLength(127);
    for (const bad of ['', 'x'.repeat(128), 'tab\there', 'émoji'])
      expect(() => validateClientToken(bad)).toThrow(UsageError);
  });

  it('ledger - operations move from pending to running to succeeded with their result', () => {
    const doc = GroupDocument.create('orders', founders);
    const { operation } = doc.createOperation(request({ region: 'ap-south' }));
    expect(doc.pendingOperations().map((o) => o.id)).toEqual([operation.id]);
    doc.updateOperation(operation.id, { status: 'running' });
    doc.updateOperation(operation.id, { status: 'succeeded', result: { linkState: 'unlinked' } });
    const done = doc.operation(operation.id)!;
    expect(done.status).toBe('succeeded');
    expect(done.result).toEqual({ linkState: 'unlinked' });
    expect(done.startedAt).not.toBeNull();
    expect(doc.pendingOperations()).toEqual([]);
  });
});

describe('document store', () => {
  it('store - saves atomically and loads what was saved', () => {
    const dir = tempDir('store');
    const opened = openDocument(dir, 'orders', founders, silentLogger);
    const saver = new DocumentSaver(opened.document, dir);
    opened.document.setLinkState('ap-south', 'unlinked', { region: 'eu-west', operationId: null });
    saver.close();
    const reopened = openDocument(dir, 'orders', founders, silentLogger);
    expect(reopened.document.region('ap-south')?.linkState).toBe('unlinked');
    expect(reopened.document.heads()).toEqual(opened.document.heads());
    expect(readdirSync(dir)).toEqual([DOCUMENT_FILE]);
  });

  it('store - a corrupt file is kept aside and the document restarts from the shared genesis', () => {
    const dir = tempDir('corrupt');
    writeFileSync(join(dir, DOCUMENT_FILE), Buffer.from('definitely not automerge'));
    const opened = openDocument(dir, 'orders', founders, silentLogger);
    expect(opened.quarantined).not.toBeNull();
    expect(existsSync(opened.quarantined!)).toBe(true);
    expect(opened.document.heads()).toEqual(GroupDocument.create('orders', founders).heads());
  });

  it('store - changes are appended to a change log; reopening loads document and log', () => {
    const dir = tempDir('append');
    const opened = openDocument(dir, 'orders', founders, silentLogger);
    const saver = new DocumentSaver(opened.document, dir);
    saver.flush(); // the first save writes the document whole
    const wholeSize = statSync(join(dir, DOCUMENT_FILE)).size;
    for (let i = 0; i < 5; i++) {
      opened.document.record({
        at: i,
        region: 'eu-west',
        kind: 'test',
        message: `event ${i}`,
        operationId: null,
      });
      saver.flush();
    }
    // The whole file was not rewritten: the five changes went to the log.
    expect(statSync(join(dir, DOCUMENT_FILE)).size).toBe(wholeSize);
    expect(statSync(join(dir, CHANGES_FILE)).size).toBeGreaterThan(0);
    const reopened = openDocument(dir, 'orders', founders, silentLogger);
    expect(reopened.document.heads()).toEqual(opened.document.heads());
    expect(reopened.document.history().map((e) => e.message)).toContain('event 4');
    // A new saver folds the log into the document.
    new DocumentSaver(reopened.document, dir).close();
    expect(readdirSync(dir)).toEqual([DOCUMENT_FILE]);
  });

  it('store - a torn change log (a crash while appending) loads up to the torn chunk', () => {
    const dir = tempDir('torn');
    const opened = openDocument(dir, 'orders', founders, silentLogger);
    const saver = new DocumentSaver(opened.document, dir);
    saver.flush();
    opened.document.record({
      at: 1,
      region: 'eu-west',
      kind: 'test',
      message: 'kept',
      operationId: null,
    });
    saver.flush();
    const complete = opened.document.heads();
    opened.document.setLinkState('ap-south', 'unlinked', { region: 'eu-west', operationId: null });
    saver.flush();
    const log = join(dir, CHANGES_FILE);
    const size = statSync(log).size;
    writeFileSync(log, readFileSync(log).subarray(0, size - 10));
    const reopened = openDocument(dir, 'orders', founders, silentLogger);
    expect(reopened.document.heads()).toEqual(complete);
    expect(reopened.document.region('ap-south')?.linkState).toBe('linked');
    new DocumentSaver(reopened.document, dir).close();
    expect(readdirSync(dir)).toEqual([DOCUMENT_FILE]);
  });

  it('store - the log is folded into the document once it passes its size limit', () => {
    const dir = tempDir('compact');
    const opened = openDocument(dir, 'orders', founders, silentLogger);
    const saver = new DocumentSaver(opened.document, dir, { compactBytes: 1 });
    saver.flush();
    opened.document.record({
      at: 1,
      region: 'eu-west',
      kind: 'test',
      message: 'one',
      operationId: null,
    });
    saver.flush();
    expect(existsSync(join(dir, CHANGES_FILE))).toBe(true);
    opened.document.record({
      at: 2,
      region: 'eu-west',
      kind: 'test',
      message: 'two',
      operationId: null,
    });
    saver.flush();
    expect(existsSync(join(dir, CHANGES_FILE))).toBe(false);
    const reopened = openDocument(dir, 'orders', founders, silentLogger);
    expect(reopened.document.heads()).toEqual(opened.document.heads());
  });

  it('store - a document of another group is refused, not overwritten', () => {
    const dir = tempDir('other');
    const saver = new DocumentSaver(GroupDocument.create('carts', founders), dir);
    saver.flush();
    expect(() => openDocument(dir, 'orders', founders, silentLogger)).toThrow(
      /belongs to group "carts"/,
    );
  });
});

describe('document sync', () => {
  /** Three documents wired through an in-memory network that can drop messages. */
  function network(dropEvery = 0) {
    const docs = new Map(founders.map((r) => [r, GroupDocument.create('orders', founders)]));
    const syncs = new Map<string, DocumentSync>();
    let sent = 0;
    let cut = new Set<string>();
    const queue: (() => void)[] = [];
    for (const [region, doc] of docs) {
      syncs.set(
        region,
        new DocumentSync(
          doc,
          (peer, message) => {
            sent += 1;
            if (dropEvery > 0 && sent % dropEvery === 0) return;
            if (cut.has(region) || cut.has(peer)) return;
            queue.push(() => syncs.get(peer)!.receive(region, message));
          },
          { resetAfterMs: 0, log: silentLogger },
        ),
      );
    }
    for (const [region, sync] of syncs) sync.setPeers(founders.filter((r) => r !== region));
    const run = () => {
      for (let i = 0; i < 10_000 && queue.length > 0; i++) queue.shift()!();
    };
    const announce = () => {
      for (const [region, doc] of docs) {
        for (const [peer, sync] of syncs)
          if (peer !== region && !cut.has(region) && !cut.has(peer))
            sync.observeHeads(region, doc.heads());
      }
    };
    return {
      docs,
      run,
      announce,
      partition: (r: string) => (cut = new Set([r])),
      heal: () => (cut = new Set()),
    };
  }

  it('sync - concurrent edits on both sides of a partition converge to identical heads after it heals', () => {
    const net = network();
    net.run();
    net.partition('ap-south');
    net.docs
      .get('eu-west')!
      .setLinkState('us-east', 'unlinking', { region: 'eu-west', operationId: null });
    net.docs
      .get('ap-south')!
      .record({ at: 2, region: 'ap-south', kind: 'note', message: 'alone', operationId: null });
    net.run();
    expect(net.docs.get('us-east')!.region('us-east')?.linkState).toBe('unlinking');
    expect(net.docs.get('ap-south')!.heads()).not.toEqual(net.docs.get('eu-west')!.heads());
    net.heal();
    for (let round = 0; round < 5; round++) {
      net.announce();
      net.run();
    }
    const heads = [...net.docs.values()].map((d) => d.heads().join());
    expect(new Set(heads).size).toBe(1);
    expect(
      net.docs
        .get('ap-south')!
        .history()
        .map((h) => h.kind)
        .sort(),
    ).toEqual(['note', 'region.unlinking']);
  });

  it('sync - lost messages are recovered through head announcements', () => {
    const net = network(3); // every third message is dropped
    for (let i = 0; i < 20; i++) {
      net.docs
        .get(founders[i % 3]!)!
        .record({ at: i, region: founders[i % 3]!, kind: `e${i}`, message: '', operationId: null });
    }
    for (let round = 0; round < 30; round++) {
      net.announce();
      net.run();
    }
    const heads = [...net.docs.values()].map((d) => d.heads().join());
    expect(new Set(heads).size).toBe(1);
    expect(net.docs.get('us-east')!.history(100)).toHaveLength(20);
  });

  it('sync - a malformed message is dropped without harm', () => {
    const doc = GroupDocument.create('orders', founders);
    const sync = new DocumentSync(doc, () => undefined, { log: silentLogger });
    const before = doc.heads();
    sync.receive('us-east', new Uint8Array([1, 2, 3, 4]));
    expect(doc.heads()).toEqual(before);
  });
});

describe('votes', () => {
  it('votes - a strict majority of linked regions is needed', () => {
    expect([1, 2, 3, 4, 5, 16].map(quorumFor)).toEqual([1, 2, 2, 3, 3, 9]);
  });

  it('votes - a restarted voter keeps its grant', () => {
    let saved: unknown = null;
    const store = { load: () => saved as never, save: (g: unknown) => (saved = g) };
    const p = (operationId: string) => ({
      operationId,
      kind: 'unlink',
      target: 'ap-south',
      proposer: 'eu-west',
      epoch: 0,
    });
    expect(
      new Voter('us-east', { store }).vote(p('op-1'), { epoch: 0, selfLinked: true }).yes,
    ).toBe(true);
    expect(
      new Voter('us-east', { store }).vote(p('op-2'), { epoch: 0, selfLinked: true }).yes,
    ).toBe(false);
  });

  it('votes - one voter grants one change at a time, and refuses stale epochs', () => {
    let now = 0;
    const voter = new Voter('us-east', { leaseMs: 1000, now: () => now });
    const p = (operationId: string, epoch = 3) => ({
      operationId,
      kind: 'unlink',
      target: 'ap-south',
      proposer: 'eu-west',
      epoch,
    });
    expect(voter.vote(p('op-1'), { epoch: 3, selfLinked: true }).yes).toBe(true);
    expect(voter.vote(p('op-1'), { epoch: 3, selfLinked: true }).yes).toBe(true);
    expect(voter.vote(p('op-2'), { epoch: 3, selfLinked: true }).reason).toMatch(
      /already voted for operation op-1/,
    );
    now = 2000;
    expect(voter.vote(p('op-2'), { epoch: 3, selfLinked: true }).yes).toBe(true);
    expect(voter.vote(p('op-3', 2), { epoch: 3, selfLinked: true }).reason).toMatch(/epoch 2/);
    expect(voter.vote(p('op-4'), { epoch: 3, selfLinked: false }).yes).toBe(false);
    expect(
      voter.vote(p('op-6'), {
        epoch: 3,
        selfLinked: true,
        proposerLinked: false,
        finished: () => true,
      }).reason,
    ).toMatch(/eu-west is not linked/);
    // op-2 holds the grant until it is seen finished.
    expect(voter.vote(p('op-5'), { epoch: 3, selfLinked: true }).yes).toBe(false);
    expect(
      voter.vote(p('op-5'), { epoch: 3, selfLinked: true, finished: (id) => id === 'op-2' }).yes,
    ).toBe(true);
  });

  it('votes - unreachable voters count as no; the minority side of a partition cannot pass', async () => {
    const proposal = {
      operationId: 'op',
      kind: 'unlink',
      target: 'us-east',
      proposer: 'ap-south',
      epoch: 0,
    };
    const result = await collectVotes(proposal, founders, async (region) => {
      if (region !== 'ap-south') throw new Error('timeout');
      return { voter: region, yes: true, reason: 'ok' };
    });
    expect(result.passed).toBe(false);
    expect(result.ballots.filter((b) => b.reason === 'no answer').map((b) => b.voter)).toEqual([
      'eu-west',
      'us-east',
    ]);
  });
});

describe('snapshot catalog', () => {
  it('catalog - snapshots added in two regions concurrently are both listed after a merge, newest first', () => {
    const a = GroupDocument.create('orders', founders);
    const b = GroupDocument.create('orders', founders);
    a.addSnapshot(
      'eu-west-1',
      { name: 'eu-west-1', region: 'eu-west', createdAt: 1 },
      { region: 'eu-west', operationId: null },
    );
    b.addSnapshot(
      'us-east-1',
      { name: 'us-east-1', region: 'us-east', createdAt: 2 },
      { region: 'us-east', operationId: null },
    );
    a.replace(A.merge(A.clone(a.doc), b.doc));
    expect(a.snapshots().map((s) => s.name)).toEqual(['us-east-1', 'eu-west-1']);
    expect(a.removeSnapshot('eu-west-1', { region: 'eu-west', operationId: null })).toBe(true);
    expect(a.removeSnapshot('eu-west-1', { region: 'eu-west', operationId: null })).toBe(false);
    expect(a.snapshot('us-east-1')).toMatchObject({ region: 'us-east' });
    expect(a.history().map((h) => h.kind)).toEqual(
      expect.arrayContaining(['snapshot.added', 'snapshot.deleted']),
    );
  });
});

describe('replication watermarks', () => {
  const tag = (ms: number, region: string) => `${String(ms).padStart(15, '0')}.000000.${region}`;

  it('watermarks - the horizon is the oldest watermark among linked regions, rows merge', () => {
    const a = GroupDocument.create('orders', founders);
    const b = GroupDocument.create('orders', founders);
    expect(a.gcHorizon()).toBe('');
    a.setWatermarks('eu-west', {
      'eu-west': tag(900, 'eu-west'),
      'us-east': tag(500, 'us-east'),
      'ap-south': tag(700, 'ap-south'),
    });
    b.setWatermarks('us-east', {
      'eu-west': tag(800, 'eu-west'),
      'ap-south': tag(650, 'ap-south'),
    });
    a.replace(A.merge(A.clone(a.doc), b.doc));
    // ap-south has not reported: nothing may be collected yet.
    expect(a.gcHorizon()).toBe('');
    a.setWatermarks('ap-south', { 'eu-west': tag(600, 'eu-west'), 'us-east': tag(550, 'us-east') });
    expect(a.gcHorizon()).toBe(tag(500, 'us-east'));
    expect(a.watermarks()['us-east']).toEqual({
      'eu-west': tag(800, 'eu-west'),
      'ap-south': tag(650, 'ap-south'),
    });
  });

  it('watermarks - tags only move forward, an unchanged row adds no change', () => {
    const a = GroupDocument.create('orders', founders);
    expect(a.setWatermarks('eu-west', { 'us-east': tag(500, 'us-east') })).toBe(true);
    const heads = a.heads();
    expect(a.setWatermarks('eu-west', { 'us-east': tag(400, 'us-east') })).toBe(false);
    expect(a.setWatermarks('eu-west', { 'us-east': tag(500, 'us-east') })).toBe(false);
    expect(a.heads()).toEqual(heads);
    expect(a.watermarks()['eu-west']).toEqual({ 'us-east': tag(500, 'us-east') });
  });

  it('watermarks - a force-unlinked region no longer holds the horizon back', () => {
    const a = GroupDocument.create('orders', founders);
    a.setWatermarks('eu-west', {
      'us-east': tag(900, 'us-east'),
      'ap-south': tag(100, 'ap-south'),
    });
    a.setWatermarks('us-east', {
      'eu-west': tag(800, 'eu-west'),
      'ap-south': tag(100, 'ap-south'),
    });
    expect(a.gcHorizon()).toBe('');
    a.setLinkState('ap-south', 'force-unlinked', { region: 'eu-west', operationId: null });
    expect(a.gcHorizon()).toBe(tag(800, 'eu-west'));
  });
});
