/**
 * `georep snapshot ...`: point-in-time RDB snapshots. Exports and deletes run in the agent of the
 * snapshot's region (operations in the ledger); download, inspect, verify and import into a
 * `--target` run here, reading the region's store over NATS or a local file.
 */
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { NotFoundError, UsageError } from '@georep/core';
import { connectGroup, type AgentClient } from '../agent-client.js';
import { formatBytes, printResult, renderTable } from '../format.js';
import { parseRedisTarget } from '../redis-target.js';
import { submitAndWait, type ChangeOptions } from './group.js';
import { makeScheduleCommand } from './snapshot-schedule.js';

/** The catalog entry fields the CLI shows. */
interface CatalogEntry {
  name: string;
  region: string;
  node: string;
  createdAt: number;
  size: number;
  keys: number;
  rdbVersion: number;
  redisVersion: string | null;
  pointInTime: boolean;
  store?: string;
}

async function catalog(client: AgentClient, group: string): Promise<CatalogEntry[]> {
  return (await client.api<{ snapshots: CatalogEntry[] }>(group, 'snapshot.list', {})).snapshots;
}

async function lookup(client: AgentClient, group: string, name: string): Promise<CatalogEntry> {
  const entry = (await catalog(client, group)).find((s) => s.name === name);
  if (entry === undefined) {
    throw new NotFoundError(
      'snapshot.not-found',
      `no snapshot named ${name} in the catalog of group ${group}`,
      {
        hint: 'georep snapshot list shows the snapshots; a local file path works too',
      },
    );
  }
  return entry;
}

/** A readable source for NAME (from its region's object store) or FILE, usable several times. */
async function openSource(
  command: Command,
  from: string,
): Promise<{ source: () => AsyncIterable<Uint8Array>; close: () => Promise<void>; label: string }> {
  if (existsSync(from))
    return { source: () => createReadStream(from), close: async () => undefined, label: from };
  const { client, group } = await connectGroup(command);
  try {
    const entry = await lookup(client, group, from);
    const { ObjectStoreSnapshotStore, snapshotBucketName } = await import('@georep/snapshot');
    const store = await ObjectStoreSnapshotStore.open(client.nc, {
      bucket: snapshotBucketName(group, entry.region),
    });
    return {
      source: () => store.read(from),
      close: () => client.close(),
      label: `${from} (${entry.region})`,
    };
  } catch (err) {
    await client.close();
    throw err;
  }
}

function progress(
  label: string,
): ((p: { bytes?: number; bytesReceived?: number; keysWritten?: number }) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    const bytes = p.bytes ?? p.bytesReceived;
    process.stderr.write(
      `\r${label}: ${bytes === undefined ? '' : formatBytes(bytes)}${p.keysWritten === undefined ? '' : ` ${p.keysWritten} keys`}   `,
    );
  };
}

function makeExport(): Command {
  return new Command('export')
    .description('export a point-in-time RDB of a node of a region into its snapshot store')
    .requiredOption('--region <name>', 'region whose data to export')
    .option('--node <id>', 'node to export (default: a healthy replica, else the primary)')
    .option('--name <name>', 'snapshot name (default: <region>-<UTC time>)')
    .option('--out <file>', 'also download the snapshot to this file')
    .option('--json', 'print one JSON document (the operation)')
    .option('--no-wait', 'return the operation at once')
    .option('--client-token <token>', 'idempotency token')
    .addOption(new Option('--wait-timeout <ms>', 'how long to wait').default('600000'))
    .action(
      async (
        opts: ChangeOptions & { region: string; node?: string; name?: string; out?: string },
        command: Command,
      ) => {
        const op = await submitAndWait(
          command,
          opts,
          'snapshot.export',
          {
            ...(opts.node === undefined ? {} : { node: opts.node }),
            ...(opts.name === undefined ? {} : { name: opts.name }),
          },
          opts.region,
        );
        if (opts.out !== undefined && op.status === 'succeeded' && op.result !== null) {
          const { client, group } = await connectGroup(command);
          await using _c = client;
          const { ObjectStoreSnapshotStore, snapshotBucketName } = await import('@georep/snapshot');
          const store = await ObjectStoreSnapshotStore.open(client.nc, {
            bucket: snapshotBucketName(group, opts.region),
          });
          await store.download(String(op.result.name), opts.out);
          if (opts.json !== true) process.stdout.write(`downloaded to ${opts.out}\n`);
        }
      },
    );
}

function makeList(): Command {
  return new Command('list')
    .description('snapshots in the group catalog, newest first')
    .option('--region <name>', 'only this region')
    .option('--json', 'print one JSON document')
    .action(async (opts: { region?: string; json?: boolean }, command: Command) => {
      const { client, group } = await connectGroup(command);
      await using _c = client;
      const entries = (await catalog(client, group)).filter(
        (s) => opts.region === undefined || s.region === opts.region,
      );
      printResult(opts.json, entries, () =>
        entries.length === 0
          ? 'no snapshots'
          : renderTable(
              ['NAME', 'REGION', 'NODE', 'CREATED', 'SIZE', 'KEYS', 'RDB', 'POINT-IN-TIME'],
              entries.map((s) => [
                s.name,
                s.region,
                s.node,
                new Date(s.createdAt).toISOString(),
                formatBytes(s.size),
                String(s.keys),
                `${s.rdbVersion}${s.redisVersion === null ? '' : ` (redis ${s.redisVersion})`}`,
                s.pointInTime ? 'yes' : 'no',
              ]),
            ),
      );
    });
}

function makeDelete(): Command {
  return new Command('delete')
    .description('delete a snapshot from its store and the catalog')
    .argument('<name>')
    .option('--json', 'print one JSON document (the operation)')
    .action(async (name: string, opts: { json?: boolean }, command: Command) => {
      const { client, group } = await connectGroup(command);
      const entry = await lookup(client, group, name).finally(() => client.close());
      await submitAndWait(
        command,
        { json: opts.json, wait: true, waitTimeout: '60000' },
        'snapshot.delete',
        { name },
        entry.region,
      );
    });
}

function makeDownload(): Command {
  return new Command('download')
    .description('download a snapshot to a local file (verified while written)')
    .argument('<name>')
    .requiredOption('--out <file>', 'where to write it')
    .option('--json', 'print one JSON document')
    .action(async (name: string, opts: { out: string; json?: boolean }, command: Command) => {
      const { client, group } = await connectGroup(command);
      await using _c = client;
      const entry = await lookup(client, group, name);
      const { ObjectStoreSnapshotStore, snapshotBucketName } = await import('@georep/snapshot');
      const store = await ObjectStoreSnapshotStore.open(client.nc, {
        bucket: snapshotBucketName(group, entry.region),
      });
      const meta = await store.download(name, opts.out);
      printResult(
        opts.json,
        { ...meta, out: opts.out },
        () => `downloaded ${name} (${formatBytes(meta.size)}) to ${opts.out}`,
      );
    });
}

function makeInspect(): Command {
  return new Command('inspect')
    .description(
      'header, aux fields, keys per db by type and encoding, biggest keys, memory estimate',
    )
    .argument('<name-or-file>')
    .option('--json', 'print one JSON document')
    .action(async (from: string, opts: { json?: boolean }, command: Command) => {
      const { source, close, label } = await openSource(command, from);
      try {
        const { inspectRdb } = await import('@georep/snapshot');
        const report = await inspectRdb(source());
        printResult(opts.json, report, () => `${label}\n${JSON.stringify(report, null, 2)}`);
      } finally {
        await close();
      }
    });
}

function makeVerify(): Command {
  return new Command('verify')
    .description('parse the whole snapshot and check its CRC64')
    .argument('<name-or-file>')
    .option('--json', 'print one JSON document')
    .action(async (from: string, opts: { json?: boolean }, command: Command) => {
      const { source, close, label } = await openSource(command, from);
      try {
        const { verifyRdb } = await import('@georep/snapshot');
        const result = await verifyRdb(source());
        printResult(opts.json, result, () =>
          result.ok
            ? `${label}: ok (${result.keys} keys, ${formatBytes(result.bytes)}, checksum ${result.checksum})`
            : `${label}: INVALID: ${result.error?.message ?? 'unknown error'} [${result.error?.code ?? '?'}] at byte ${result.error?.offset ?? '?'}`,
        );
        if (!result.ok) {
          throw Object.assign(
            new UsageError(
              result.error?.code ?? 'rdb.corrupt',
              result.error?.message ?? 'invalid snapshot',
            ),
            { alreadyReported: true },
          );
        }
      } finally {
        await close();
      }
    });
}

function makeImport(): Command {
  return new Command('import')
    .description(
      'import a snapshot into a Redis node (verified completely before anything is written)',
    )
    .option(
      '--target <url>',
      'redis://[user:pass@]host:port[/db] (rediss:// for TLS); password also from GEOREP_REDIS_PASSWORD',
    )
    .option(
      '--region <name>',
      "import into this region's primary, through its agent (a catalogued snapshot only)",
    )
    .option('--yes', '--region with --mode replace: confirm (the flush and the keys replicate)')
    .option('--no-wait', '--region: return the operation at once')
    .option('--client-token <token>', '--region: idempotency token')
    .addOption(new Option('--wait-timeout <ms>', '--region: how long to wait').default('600000'))
    .requiredOption('--from <name-or-file>', 'a snapshot name from the catalog or a local RDB file')
    .addOption(
      new Option('--mode <mode>', 'replace: flush the target dbs first; merge: keep existing keys')
        .choices(['replace', 'merge'])
        .default('merge'),
    )
    .addOption(
      new Option('--on-conflict <what>', 'merge mode: existing keys')
        .choices(['skip', 'replace'])
        .default('skip'),
    )
    .option('--match <pattern>', 'only keys matching this glob')
    .option('--db <n>', 'only this db of the snapshot')
    .option('--target-ca <file>', 'CA certificate for rediss://')
    .option(
      '--native',
      'replace mode at native load speed: the target loads the file as a replica of this process (needs REPLICAOF rights; replaces every db)',
    )
    .option('--listen-host <host>', '--native: address to listen on', '127.0.0.1')
    .option('--advertise-host <host>', '--native: address the target dials (default: listen host)')
    .option('--json', 'print one JSON document')
    .action(
      async (
        opts: {
          target?: string;
          region?: string;
          yes?: boolean;
          wait: boolean;
          clientToken?: string;
          waitTimeout: string;
          from: string;
          mode: 'replace' | 'merge';
          onConflict: 'skip' | 'replace';
          match?: string;
          db?: string;
          targetCa?: string;
          native?: boolean;
          listenHost: string;
          advertiseHost?: string;
          json?: boolean;
        },
        command: Command,
      ) => {
        if ((opts.target === undefined) === (opts.region === undefined)) {
          throw new UsageError(
            'usage.bad-option',
            'say where to import: exactly one of --target URL or --region NAME',
            {
              hint: 'georep snapshot import --region eu-west --from NAME, or --target redis://host:port',
            },
          );
        }
        if (opts.region !== undefined) {
          await importThroughAgent(command, { ...opts, region: opts.region });
          return;
        }
        const target = parseRedisTarget(opts.target!, process.env, opts.targetCa);
        if (opts.native === true) {
          await importNative(command, opts, target);
          return;
        }
        const db = opts.db === undefined ? target.db : Number(opts.db);
        const { source, close, label } = await openSource(command, opts.from);
        try {
          const { importRdb } = await import('@georep/snapshot');
          const onProgress = progress(`importing ${label}`);
          const result = await importRdb({
            source,
            target: {
              node: target.node,
              config: target.config,
              ...(db === undefined ? {} : { db }),
            },
            mode: opts.mode,
            ...(opts.mode === 'merge' ? { onConflict: opts.onConflict } : {}),
            ...(opts.match === undefined ? {} : { match: opts.match }),
            ...(onProgress === undefined ? {} : { onProgress }),
          });
          if (onProgress !== undefined) process.stderr.write('\n');
          printResult(
            opts.json,
            result,
            () =>
              `imported ${label} into ${target.node.host}:${target.node.port}: ${result.keysWritten} keys written (${result.restored} by RESTORE, ${result.viaCommands} as commands), ` +
              `${result.skippedExisting} existing kept, ${result.skippedExpired} expired skipped, ${result.skippedUnsupported.length} unsupported`,
          );
        } finally {
          await close();
        }
      },
    );
}

/**
 * `snapshot import --region R`: the region's agent imports a catalogued snapshot into its primary
 * (an operation in the ledger). With replication on, the keys, and a replace's flush, replicate to
 * every linked region, so a replace needs `--yes`.
 */
async function importThroughAgent(
  command: Command,
  opts: ChangeOptions & {
    region: string;
    from: string;
    mode: 'replace' | 'merge';
    onConflict: 'skip' | 'replace';
    match?: string;
    db?: string;
    native?: boolean;
    yes?: boolean;
  },
): Promise<void> {
  if (existsSync(opts.from)) {
    throw new UsageError(
      'snapshot.file-needs-target',
      `--region imports a snapshot of the catalog; ${opts.from} is a local file`,
      { hint: 'import a local file with --target redis://host:port, or export a snapshot first' },
    );
  }
  if (opts.native === true) {
    throw new UsageError(
      'snapshot.native-conflict',
      '--native needs --target: the target must dial this machine',
      { hint: 'use --target with --native, or drop --native' },
    );
  }
  if (opts.mode === 'replace' && opts.yes !== true) {
    throw new UsageError(
      'usage.confirmation-required',
      `--mode replace into region ${opts.region} flushes its databases; with replication the flush and the keys reach every linked region`,
      { hint: 'add --yes to confirm, or use --mode merge' },
    );
  }
  await submitAndWait(
    command,
    opts,
    'snapshot.import',
    {
      name: opts.from,
      mode: opts.mode,
      ...(opts.mode === 'merge' ? { onConflict: opts.onConflict } : {}),
      ...(opts.match === undefined ? {} : { match: opts.match }),
      ...(opts.db === undefined ? {} : { db: Number(opts.db) }),
    },
    opts.region,
  );
}

/**
 * `snapshot import --native`: the whole file is served to the target over the replication
 * protocol. A catalog snapshot is downloaded to a temporary file first, because the length is
 * sent before the bytes.
 */
async function importNative(
  command: Command,
  opts: {
    from: string;
    mode: string;
    match?: string;
    db?: string;
    listenHost: string;
    advertiseHost?: string;
    json?: boolean;
  },
  target: ReturnType<typeof parseRedisTarget>,
): Promise<void> {
  const conflicts = [
    opts.match === undefined ? undefined : '--match',
    opts.db === undefined ? undefined : '--db',
    command.getOptionValueSource('mode') === 'cli' && opts.mode !== 'replace'
      ? `--mode ${opts.mode}`
      : undefined,
  ].filter((o) => o !== undefined);
  if (conflicts.length > 0) {
    throw new UsageError(
      'snapshot.native-conflict',
      `--native replaces every database of the target with the whole file; it cannot be combined with ${conflicts.join(', ')}`,
      { hint: 'drop --native to import part of a snapshot or to merge (RESTORE-based import)' },
    );
  }
  let file = opts.from;
  let tmp: string | undefined;
  if (!existsSync(opts.from)) {
    const { client, group } = await connectGroup(command);
    try {
      const entry = await lookup(client, group, opts.from);
      const { ObjectStoreSnapshotStore, snapshotBucketName } = await import('@georep/snapshot');
      const store = await ObjectStoreSnapshotStore.open(client.nc, {
        bucket: snapshotBucketName(group, entry.region),
      });
      tmp = await mkdtemp(join(tmpdir(), 'georep-import-'));
      file = join(tmp, 'snapshot.rdb');
      await store.download(opts.from, file);
    } finally {
      await client.close();
    }
  }
  try {
    const { importRdbNative } = await import('@georep/snapshot');
    const show = progress(`importing ${opts.from} natively`);
    const result = await importRdbNative({
      file,
      target: { node: target.node, config: target.config },
      listenHost: opts.listenHost,
      ...(opts.advertiseHost === undefined ? {} : { advertiseHost: opts.advertiseHost }),
      ...(show === undefined ? {} : { onProgress: (p) => show({ bytes: p.bytes }) }),
    });
    if (show !== undefined) process.stderr.write('\n');
    printResult(
      opts.json,
      result,
      () =>
        `loaded ${opts.from} into ${target.node.host}:${target.node.port} over replication: ${result.keysLoaded} keys, ${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s (load ${(result.loadMs / 1000).toFixed(1)} s)`,
    );
  } finally {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  }
}

export function makeSnapshotCommand(): Command {
  return new Command('snapshot')
    .description(
      'point-in-time RDB snapshots: export, list, download, inspect, verify, import, delete',
    )
    .addCommand(makeExport())
    .addCommand(makeList())
    .addCommand(makeDownload())
    .addCommand(makeInspect())
    .addCommand(makeVerify())
    .addCommand(makeImport())
    .addCommand(makeDelete())
    .addCommand(makeScheduleCommand());
}
