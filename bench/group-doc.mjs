#!/usr/bin/env node
// Group-document figures, each beside a baseline measured in the same run:
//   - propagation: a membership change made in one region until every agent has identical heads
//     (baseline: a NATS request/reply round trip between two regions, over the gateway)
//   - size: the saved document after N operations (baseline: the same data as plain JSON)
//   - merge after a partition: heal until identical heads (baseline: the nats-server restart
//     that the heal itself costs in the testkit)
// Usage: npm run bench:group [-- --operations 10000 --changes 5]. Loopback only, bounded loops.
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { groupSubjects } from '@georep/core';
import { GroupDocument } from '@georep/group';
import { planGroup, startGroup, tempDir, waitFor } from '@georep/testkit';
import { fileURLToPath } from 'node:url';

const { values } = parseArgs({
  options: {
    operations: { type: 'string', default: '10000' },
    changes: { type: 'string', default: '5' },
  },
});
const OPERATIONS = Number(values.operations);
const CHANGES = Number(values.changes);
const BIN = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs, unit) =>
  `median ${median(xs).toFixed(1)}${unit} (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}, n=${xs.length})`;

// 1. Size after N operations (in process).
{
  const doc = GroupDocument.create('bench', ['eu-west', 'us-east', 'ap-south']);
  const plain = [];
  const t = performance.now();
  for (let i = 0; i < OPERATIONS; i++) {
    const request = {
      kind: 'unlink',
      params: { region: 'ap-south', force: false, resync: false },
      clientToken: `token-${i}`,
      requestedVia: 'eu-west',
      requestedBy: 'bench@host',
    };
    const { operation } = doc.createOperation(request);
    doc.updateOperation(operation.id, { status: 'running' });
    doc.updateOperation(operation.id, {
      status: 'succeeded',
      result: { region: 'ap-south', linkState: 'unlinked', epoch: i },
    });
    doc.record({
      at: Date.now(),
      region: 'eu-west',
      kind: 'bench',
      message: `event ${i}`,
      operationId: operation.id,
    });
    plain.push({ ...doc.operation(operation.id), history: doc.history(1) });
  }
  const buildMs = performance.now() - t;
  const saved = doc.save().byteLength;
  const json = Buffer.byteLength(JSON.stringify(plain));
  console.log(
    `## Document size after ${OPERATIONS} operations (each: create, running, succeeded, one history event)`,
  );
  console.log(
    `saved document ${(saved / 2 ** 20).toFixed(2)} MiB   | baseline same data as JSON: ${(json / 2 ** 20).toFixed(2)} MiB   (built in ${(buildMs / 1000).toFixed(1)} s)`,
  );
}

// 2 and 3 need a running group.
const regions = ['eu-west', 'us-east', 'ap-south'];
const plan = await planGroup({
  group: 'bench',
  dir: tempDir('bench-group'),
  regions,
  replicas: 0,
  ports: 'free',
  health: { intervalMs: 500, downAfterMs: 2000 },
});
const group = await startGroup(plan, {
  agentCommand: (f) => ({ command: process.execPath, args: [BIN, 'agent', '--config', f] }),
});
const ncs = await Promise.all(
  plan.regions.map((r) => connect({ servers: `nats://127.0.0.1:${r.nats.port}` })),
);
const subjects = groupSubjects('bench');
const heads = async () =>
  Promise.all(
    ncs.map(async (nc, i) =>
      (await nc.request(subjects.regionApi(regions[i], 'group.show'), '{}', { timeout: 2000 }))
        .json()
        .result.heads.join(),
    ),
  );
const submit = async (nc, body) =>
  (
    await nc.request(subjects.api('op.submit'), JSON.stringify({ ...body, requestedBy: 'bench' }), {
      timeout: 5000,
    })
  ).json();
try {
  const echo = ncs[1].subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
  await ncs[1].flush();
  const rtt = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    await ncs[0].request('bench.echo', 'x', { timeout: 2000 });
    rtt.push(performance.now() - t);
  }
  echo.unsubscribe();
  const propagation = [];
  for (let i = 0; i < CHANGES; i++) {
    const before = (await heads())[0];
    const t = performance.now();
    const kind = i % 2 === 0 ? 'unlink' : 'link';
    const reply = await submit(ncs[0], { kind, region: 'ap-south' });
    if (!reply.ok) throw new Error(JSON.stringify(reply.error));
    await waitFor(heads, (hs) => new Set(hs).size === 1 && hs[0] !== before, {
      timeoutMs: 10_000,
      intervalMs: 5,
    });
    propagation.push(performance.now() - t);
    await waitFor(
      async () =>
        (
          await ncs[0].request(subjects.api('op.get'), JSON.stringify({ id: reply.result.id }), {
            timeout: 2000,
          })
        ).json().result.status,
      (s) => s === 'succeeded' || s === 'failed',
    );
  }
  console.log(
    `\n## Membership change until every agent has identical heads (${CHANGES} changes, votes included)`,
  );
  console.log(
    `propagation    ${fmt(propagation, ' ms')}   | baseline NATS round trip across a gateway: ${fmt(rtt, ' ms')}`,
  );

  // 3. Merge after a partition.
  await waitFor(heads, (hs) => new Set(hs).size === 1, { timeoutMs: 10_000 });
  const merges = [];
  const restarts = [];
  const gatewaysBack = [];
  const linked = async () => {
    const all = await Promise.all(
      plan.regions.map(
        async (r) =>
          (await (await fetch(`http://127.0.0.1:${r.nats.monitorPort}/gatewayz`)).json())
            .outbound_gateways ?? {},
      ),
    );
    return all.every((out) => Object.keys(out).length >= regions.length - 1);
  };
  for (let i = 0; i < 3; i++) {
    await group.partitionRegion('ap-south');
    for (let k = 0; k < 10; k++) {
      // Failed operations are changes too: they land in the ledger of the side that ran them.
      await submit(ncs[0], { kind: 'link', region: 'eu-west' }).catch(() => undefined);
    }
    const t = performance.now();
    await group.healRegion('ap-south');
    restarts.push(performance.now() - t);
    const merged = waitFor(heads, (hs) => new Set(hs).size === 1, {
      timeoutMs: 30_000,
      intervalMs: 20,
    }).then(() => merges.push(performance.now() - t));
    await waitFor(linked, (ok) => ok, { timeoutMs: 30_000, intervalMs: 20 });
    gatewaysBack.push(performance.now() - t);
    await merged;
  }
  console.log(
    `\n## Heal until identical heads (10 changes on the majority side while partitioned)`,
  );
  console.log(
    `merge          ${fmt(merges, ' ms')}   | baselines: every gateway link back ${fmt(gatewaysBack, ' ms')}; nats-server restart ${fmt(restarts, ' ms')}`,
  );
} finally {
  await Promise.all(ncs.map((nc) => nc.close()));
  await group.stop();
}
