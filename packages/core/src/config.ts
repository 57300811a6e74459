/**
 * Agent configuration: a JSON file, overridden by environment variables, overridden by flags.
 * Validation happens once, here, and every problem is reported with its path and a fix, so the
 * agent never starts with a configuration it would misread.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { isValidName } from './ids.js';
import { isTimeZone } from './maintenance-window.js';

const name = (what: string) =>
  z
    .string()
    .refine(isValidName, `${what} must be 1-32 lower-case letters, digits or '-' (e.g. "eu-west")`);

/** The shard of nodes that name none: a region with one shard never needs to name it. */
export const DEFAULT_SHARD = 'main';

const fileRef = z.string().min(1, 'must be a file path');

const tlsSchema = z
  .object({
    caFile: fileRef.optional(),
    certFile: fileRef.optional(),
    keyFile: fileRef.optional(),
    /** Verify the server certificate (default true). */
    rejectUnauthorized: z.boolean().default(true),
    /** Host name to verify the certificate against, when it differs from the host dialled. */
    servername: z.string().optional(),
  })
  .strict()
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), {
    message: 'certFile and keyFile go together: give both for client certificates, or neither',
  });

const natsSchema = z
  .object({
    servers: z
      .array(
        z
          .string()
          .regex(
            /^(nats|tls|wss?):\/\/[^\s]+$|^[^\s/:]+:\d+$/,
            'must be a NATS URL like nats://host:4222',
          ),
      )
      .min(1, 'give at least one NATS server URL'),
    user: z.string().optional(),
    password: z.string().optional(),
    passwordFile: fileRef.optional(),
    token: z.string().optional(),
    tokenFile: fileRef.optional(),
    nkeySeedFile: fileRef.optional(),
    credsFile: fileRef.optional(),
    tls: tlsSchema.optional(),
  })
  .strict();

const nodeSchema = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, "1-64 letters, digits or '-', '_', '.', ':'")
      .optional(),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    /**
     * The shard the node belongs to: a primary and its replicas. Nodes without one are in
     * {@link DEFAULT_SHARD}. Switchover and failover never move a node between shards.
     */
    shard: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, '1-32 lower-case letters, digits or \'-\' (e.g. "s2")')
      .default(DEFAULT_SHARD),
  })
  .strict();

const redisSchema = z
  .object({
    nodes: z.array(nodeSchema).min(1, 'list at least one Redis node of this region'),
    username: z.string().optional(),
    password: z.string().optional(),
    passwordFile: fileRef.optional(),
    tls: tlsSchema.optional(),
    /** Timeout of one PING/INFO round trip. */
    commandTimeoutMs: z.number().int().min(50).max(60_000).default(800),
  })
  .strict();

const healthSchema = z
  .object({
    intervalMs: z.number().int().min(100).max(60_000).default(1000),
    downAfterMs: z.number().int().min(500).max(600_000).default(5000),
  })
  .strict()
  .refine((h) => h.downAfterMs >= 2 * h.intervalMs, {
    message:
      'downAfterMs must be at least twice intervalMs, or one late heartbeat marks a region suspect',
  });

const failoverSchema = z
  .object({
    /** Promote a replica when a shard's primary is down (Sentinel's job, done by the agent). */
    auto: z.boolean().default(true),
    /** A primary unreachable this long, with its replicas' links down too, is failed over. */
    downAfterMs: z.number().int().min(500).max(600_000).default(5000),
    /** At most one automatic failover per shard in this period (Sentinel's failover-timeout). */
    failoverTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
    /** How long a safe switchover waits for the target to reach the primary's offset. */
    switchoverTimeoutMs: z.number().int().min(100).max(600_000).default(5000),
  })
  .strict();

/** When planned switchovers with `--when maintenance-window` may run. */
const maintenanceWindowSchema = z
  .object({
    /** Local start time, `HH:MM` or `HH:MM:SS` (24 h). */
    start: z
      .string()
      .regex(
        /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/,
        'must be HH:MM or HH:MM:SS, 24-hour (e.g. "02:30")',
      ),
    durationMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60),
    timeZone: z.string().refine(isTimeZone, 'must be an IANA time zone (e.g. "Europe/Berlin")'),
  })
  .strict();

const sentinelSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(26379),
    /** Password Sentinel clients must send with AUTH (`sentinelPassword` in ioredis). */
    password: z.string().optional(),
  })
  .strict();

const httpSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(9464),
  })
  .strict();

/** The schema of an agent configuration file. */
export const agentConfigSchema = z
  .object({
    group: name('group'),
    region: name('region'),
    /** Regions expected in the group; others are added as their heartbeats arrive. */
    regions: z.array(name('region')).default([]),
    nats: natsSchema,
    redis: redisSchema,
    health: healthSchema.default({ intervalMs: 1000, downAfterMs: 5000 }),
    failover: failoverSchema.default({
      auto: true,
      downAfterMs: 5000,
      failoverTimeoutMs: 60_000,
      switchoverTimeoutMs: 5000,
    }),
    /** Window for `georep switchover --when maintenance-window`; null when none is set. */
    maintenanceWindow: maintenanceWindowSchema.nullable().default(null),
    /** The Sentinel-compatible discovery endpoint; `false` turns it off. */
    sentinel: z.union([sentinelSchema, z.literal(false)]).default({
      host: '127.0.0.1',
      port: 26379,
    }),
    /** `false` turns the HTTP endpoint off. */
    http: z.union([httpSchema, z.literal(false)]).default({ host: '127.0.0.1', port: 9464 }),
    dataDir: z.string().optional(),
    snapshots: z
      .object({
        /** `object-store`: a JetStream Object Store bucket of this region, readable from every region. */
        store: z.enum(['object-store', 'directory']).default('object-store'),
        /** Directory of the `directory` store (default `<dataDir>/snapshots`). */
        dir: z.string().optional(),
        /** Export from a healthy replica when the request names no node, so the primary does not fork. */
        preferReplica: z.boolean().default(true),
        /**
         * Native loads (`link --resync`): the agent serves the snapshot to its primary over the
         * replication protocol, listening on this address...
         */
        nativeListenHost: z.string().min(1).default('127.0.0.1'),
        /** ...which the primary dials at this address (default: the listen address). */
        nativeAdvertiseHost: z.string().min(1).optional(),
      })
      .strict()
      .default({ store: 'object-store', preferReplica: true, nativeListenHost: '127.0.0.1' }),
    /** Snapshot schedules (`georep snapshot schedule`) run by this agent for its region. */
    schedules: z
      .object({
        /** `false`: this agent runs no schedule (another agent of the region does). */
        enabled: z.boolean().default(true),
        /**
         * A slot missed while no agent of the region ran (down, restarting) still runs on start
         * when it is at most this old; older slots are recorded as missed.
         */
        missedGraceMs: z.number().int().min(0).max(86_400_000).default(300_000),
      })
      .strict()
      .default({ enabled: true, missedGraceMs: 300_000 }),
    replication: z
      .object({
        /** Capture this region's writes and apply the linked regions' writes. */
        enabled: z.boolean().default(true),
        /** Largest number of operations in one replication message. */
        maxBatchOps: z.number().int().min(1).max(10_000).default(512),
        /**
         * Size limit of this region's operation stream. When a down peer's backlog reaches it, the
         * oldest operations are dropped and that peer needs a resync.
         */
        streamMaxBytes: z
          .number()
          .int()
          .min(1024 * 1024)
          .default(1024 * 1024 * 1024),
        /**
         * How often (at most) this region's watermarks are written into the group document, which
         * keeps history: a low rate keeps it small. The horizon they set is held an hour back by
         * `gcMinAgeMs` anyway, so minutes cost nothing.
         */
        watermarkIntervalMs: z.number().int().min(1000).max(3_600_000).default(300_000),
        /**
         * How long a captured batch may wait for a replica of the primary to have it before it is
         * sent to the other regions anyway; 0 (the default) sends at once. Waiting means a failover
         * never loses a write that other regions already applied, at a cost in lag under load
         * (docs/replication-internals.md).
         */
        replicaAckTimeoutMs: z.number().int().min(0).max(10_000).default(0),
        /**
         * Force-unlink a linked region automatically once it has been down (a majority of live
         * agents agree) this long, so that its backlog stops growing in every other region.
         * Null (the default) leaves it to the operator.
         */
        autoForceUnlinkAfterMs: z
          .number()
          .int()
          .min(1000)
          .max(30 * 86_400_000)
          .nullable()
          .default(null),
        /** How often tombstones and dead metadata below the horizon are collected. */
        gcIntervalMs: z.number().int().min(1000).max(86_400_000).default(60_000),
        /**
         * Tombstones younger than this are kept whatever the horizon: a batch re-published late
         * (an agent down longer than JetStream's duplicate window) must still find them.
         */
        gcMinAgeMs: z
          .number()
          .int()
          .min(0)
          .max(30 * 86_400_000)
          .default(3_600_000),
      })
      .strict()
      .default({
        enabled: true,
        maxBatchOps: 512,
        streamMaxBytes: 1024 * 1024 * 1024,
        watermarkIntervalMs: 300_000,
        autoForceUnlinkAfterMs: null,
        replicaAckTimeoutMs: 0,
        gcIntervalMs: 60_000,
        gcMinAgeMs: 3_600_000,
      }),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
      })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

/** A validated agent configuration, with defaults filled in. */
export type AgentConfig = z.output<typeof agentConfigSchema>;
/** NATS connection settings (shared by the agent and the CLI). */
export type NatsConfig = z.output<typeof natsSchema>;
/** Redis connection settings of one region. */
export type RedisConfig = z.output<typeof redisSchema>;
/** TLS settings for NATS or Redis. */
export type TlsConfig = z.output<typeof tlsSchema>;
/** A region's maintenance window as configured. */
export type MaintenanceWindowConfig = z.output<typeof maintenanceWindowSchema>;
/** A configured Redis node. */
export interface ConfiguredNode {
  id: string;
  host: string;
  port: number;
  /** Its shard ({@link DEFAULT_SHARD} unless configured). */
  shard?: string;
}

/** Environment variables read by {@link loadAgentConfig}, documented in docs/configuration.md. */
export const CONFIG_ENV = {
  group: 'GEOREP_GROUP',
  region: 'GEOREP_REGION',
  natsUrl: 'GEOREP_NATS_URL',
  natsUser: 'GEOREP_NATS_USER',
  natsPassword: 'GEOREP_NATS_PASSWORD',
  natsToken: 'GEOREP_NATS_TOKEN',
  natsCreds: 'GEOREP_NATS_CREDS',
  natsNkeySeedFile: 'GEOREP_NATS_NKEY_SEED_FILE',
  redisUsername: 'GEOREP_REDIS_USERNAME',
  redisPassword: 'GEOREP_REDIS_PASSWORD',
  logLevel: 'GEOREP_LOG_LEVEL',
  httpPort: 'GEOREP_HTTP_PORT',
} as const;

type Json = Record<string, unknown>;

function objectAt(root: Json, key: string): Json {
  const current = root[key];
  if (typeof current === 'object' && current !== null && !Array.isArray(current)) {
    return current as Json;
  }
  const fresh: Json = {};
  root[key] = fresh;
  return fresh;
}

/** Applies `GEOREP_*` variables over a raw (unvalidated) configuration object. */
export function applyEnv(raw: Json, env: NodeJS.ProcessEnv): Json {
  const out: Json = structuredClone(raw);
  const set = (variable: string, apply: (value: string) => void) => {
    const value = env[variable];
    if (value !== undefined && value !== '') apply(value);
  };
  set(CONFIG_ENV.group, (v) => (out.group = v));
  set(CONFIG_ENV.region, (v) => (out.region = v));
  set(CONFIG_ENV.natsUrl, (v) => (objectAt(out, 'nats').servers = splitList(v)));
  set(CONFIG_ENV.natsUser, (v) => (objectAt(out, 'nats').user = v));
  set(CONFIG_ENV.natsPassword, (v) => (objectAt(out, 'nats').password = v));
  set(CONFIG_ENV.natsToken, (v) => (objectAt(out, 'nats').token = v));
  set(CONFIG_ENV.natsCreds, (v) => (objectAt(out, 'nats').credsFile = v));
  set(CONFIG_ENV.natsNkeySeedFile, (v) => (objectAt(out, 'nats').nkeySeedFile = v));
  set(CONFIG_ENV.redisUsername, (v) => (objectAt(out, 'redis').username = v));
  set(CONFIG_ENV.redisPassword, (v) => (objectAt(out, 'redis').password = v));
  set(CONFIG_ENV.logLevel, (v) => (objectAt(out, 'log').level = v));
  set(CONFIG_ENV.httpPort, (v) => {
    const http = objectAt(out, 'http');
    http.port = Number(v);
  });
  return out;
}

/** Splits a comma-separated list, dropping blanks (`"a, b,"` → `["a", "b"]`). */
export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const path = issue.path.length === 0 ? '(top level)' : issue.path.map(String).join('.');
      return `  ${path}: ${issue.message}`;
    })
    .join('\n');
}

/**
 * Validates a raw configuration object (after env and flags were applied). `source` names where
 * it came from in error messages. Throws {@link ConfigError} `config.invalid` listing every problem.
 */
export function parseAgentConfig(raw: unknown, source = 'configuration'): AgentConfig {
  const result = agentConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      'config.invalid',
      `${source} is invalid:\n${describeIssues(result.error.issues)}`,
      {
        hint: 'fix the fields listed above; docs/configuration.md describes every field',
        details: {
          source,
          issues: result.error.issues.map((i) => ({ path: i.path, message: i.message })),
        },
      },
    );
  }
  const config = result.data;
  const ids = new Set<string>();
  for (const node of config.redis.nodes) {
    const id = node.id ?? `${node.host}:${node.port}`;
    if (ids.has(id)) {
      throw new ConfigError(
        'config.invalid',
        `${source} is invalid: node id "${id}" appears twice`,
        {
          hint: 'give every Redis node of the region a distinct id (or distinct host:port)',
        },
      );
    }
    ids.add(id);
  }
  if (config.nats.token !== undefined && config.nats.tokenFile !== undefined) {
    throw new ConfigError(
      'config.invalid',
      `${source} is invalid: nats.token and nats.tokenFile both set`,
      {
        hint: 'keep one of them',
      },
    );
  }
  if (config.failover.downAfterMs < 2 * config.health.intervalMs) {
    throw new ConfigError(
      'config.invalid',
      `${source} is invalid: failover.downAfterMs (${config.failover.downAfterMs}) is under twice health.intervalMs (${config.health.intervalMs})`,
      {
        hint: 'a primary must miss at least two samples before it is failed over: raise failover.downAfterMs',
      },
    );
  }
  if (!config.regions.includes(config.region)) config.regions.unshift(config.region);
  return config;
}

/** Reads and parses a JSON file, with clear errors for a missing file or bad JSON. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('config.not-found', `cannot read configuration file ${path}`, {
      cause: err,
      hint: 'check the path given to --config (georep dev start writes one per region in its --dir)',
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ConfigError(
      'config.bad-json',
      `${path} is not valid JSON: ${(err as Error).message}`,
      {
        cause: err,
        hint: 'fix the JSON syntax (a trailing comma or a missing quote is the usual cause)',
      },
    );
  }
}

/**
 * Loads the agent configuration: file, then `GEOREP_*` environment, then `overrides` (flags).
 * `overrides` is merged one level deep (`{ nats: { servers } }` keeps the other nats fields).
 */
export function loadAgentConfig(
  path: string,
  env: NodeJS.ProcessEnv = process.env,
  overrides: Json = {},
): AgentConfig {
  const fromFile = readJsonFile(path);
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
    throw new ConfigError('config.invalid', `${path} must hold a JSON object`, {
      hint: 'see docs/configuration.md for an example',
    });
  }
  const merged = applyEnv(fromFile as Json, env);
  for (const [key, value] of Object.entries(overrides)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      Object.assign(objectAt(merged, key), value);
    } else if (value !== undefined) {
      merged[key] = value;
    }
  }
  return parseAgentConfig(merged, path);
}

/** The configured nodes with their ids filled in (`host:port` when no id was given). */
export function configuredNodes(config: Pick<AgentConfig, 'redis'>): ConfiguredNode[] {
  return config.redis.nodes.map((n) => ({
    id: n.id ?? `${n.host}:${n.port}`,
    host: n.host,
    port: n.port,
    shard: n.shard,
  }));
}

/** Reads a secret given inline or as a file (trailing newline dropped). */
export function resolveSecret(
  inline: string | undefined,
  file: string | undefined,
): string | undefined {
  if (inline !== undefined) return inline;
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new ConfigError('config.secret-unreadable', `cannot read secret file ${file}`, {
      cause: err,
      hint: 'check the path and that the agent user may read it',
    });
  }
}
