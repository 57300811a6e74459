import { describe, expect, it } from 'vitest';
import { groupSubjects, silentLogger, setLoggerFactory } from '@georep/core';
import { GroupPlane, OperationRunner } from '@georep/agent';

setLoggerFactory(() => silentLogger);

describe('operation runner', () => {
  it('force-unlink - operations the unlinked region was running are marked abandoned', async () => {
    const plane = new GroupPlane({
      group: 'g',
      region: 'a',
      founders: ['a', 'b', 'c'],
      dataDir: undefined,
      subjects: groupSubjects('g'),
    });
    const runner = new OperationRunner({
      region: 'a',
      plane,
      healthOf: (region) => (region === 'c' ? 'down' : 'up'),
      askVote: () => Promise.reject(new Error('no votes in this test')),
    });
    const doc = plane.document;
    const ofC = doc.createOperation({
      kind: 'switchover',
      params: { region: 'c', nodes: ['c-2'], when: 'maintenance-window', mode: 'safe' },
      clientToken: null,
      requestedVia: 'c',
      requestedBy: 'ops@host',
    }).operation;
    const ofB = doc.createOperation({
      kind: 'switchover',
      params: { region: 'b', nodes: ['b-2'], when: 'maintenance-window', mode: 'safe' },
      clientToken: null,
      requestedVia: 'b',
      requestedBy: 'ops@host',
    }).operation;
    const unlink = runner.submit({
      kind: 'unlink',
      region: 'c',
      force: true,
      yes: true,
      reason: 'c is gone',
      requestedBy: 'ops@host',
    });
    await runner.idle();
    expect(doc.operation(unlink.id)?.status).toBe('succeeded');
    expect(doc.operation(ofC.id)?.status).toBe('failed');
    expect(doc.operation(ofC.id)?.error?.code).toBe('operation.abandoned');
    // Another region's operation is untouched.
    expect(doc.operation(ofB.id)?.status).toBe('pending');
    plane.close();
  });
});
