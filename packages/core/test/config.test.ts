import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  ExitCode,
  exitCodeFor,
  loadAgentConfig,
  parseAgentConfig,
  resolveSecret,
} from '@georep/core';

const minimal = {
  group: 'orders',
  region: 'eu-west',
  nats: { servers: ['nats://127.0.0.1:4222'] },
  redis: { nodes: [{ host: '127.0.0.1', port: 6379 }] },
};

function writeConfig(value: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'georep-config-'));
  const path = join(dir, 'agent.json');
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('config - fills defaults and adds the own region to the expected regions', () => {
    const config = parseAgentConfig(minimal);
    expect(config.health).toEqual({ intervalMs: 1000, downAfterMs: 5000 });
    expect(config.http).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.regions).toEqual(['eu-west']);
    expect(config.log.level).toBe('info');
  });

  it('config - lists every invalid field with its path in one error', () => {
    const err = configError(() =>
      parseAgentConfig({
        ...minimal,
        region: 'EU West',
        nats: { servers: ['http://x'] },
        redis: { nodes: [{ host: 'h', port: 70000 }] },
        extra: 1,
      }),
    );
    expect(err.code).toBe('config.invalid');
    expect(err.message).toContain('region:');
    expect(err.message).toContain('nats.servers.0:');
    expect(err.message).toContain('redis.nodes.0.port:');
    expect(err.message).toContain('extra');
    expect(err.hint).toMatch(/docs\/configuration.md/);
    expect(exitCodeFor(err)).toBe(ExitCode.config);
  });

  it('config - refuses duplicate node ids and a downAfterMs shorter than two intervals', () => {
    expect(
      configError(() =>
        parseAgentConfig({
          ...minimal,
          redis: {
            nodes: [
              { host: '127.0.0.1', port: 1 },
              { host: '127.0.0.1', port: 1 },
            ],
          },
        }),
      ).message,
    ).toContain('appears twice');
    expect(
      configError(() =>
        parseAgentConfig({ ...minimal, health: { intervalMs: 1000, downAfterMs: 1500 } }),
      ).message,
    ).toContain('downAfterMs must be at least twice intervalMs');
  });

  it('config - environment overrides the file and flags override the environment', () => {
    const path = writeConfig(minimal);
    const config = loadAgentConfig(
      path,
      {
        GEOREP_NATS_URL: 'nats://10.0.0.1:4222, nats://10.0.0.2:4222',
        GEOREP_REDIS_PASSWORD: 's3cret',
        GEOREP_GROUP: 'carts',
      },
      { group: 'payments' },
    );
    expect(config.nats.servers).toEqual(['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222']);
    expect(config.redis.password).toBe('s3cret');
    expect(config.group).toBe('payments');
  });

  it('config - a missing file and bad JSON get their own codes', () => {
    expect(configError(() => loadAgentConfig('/nonexistent/agent.json', {})).code).toBe(
      'config.not-found',
    );
    expect(configError(() => loadAgentConfig(writeConfig('{ "group": '), {})).code).toBe(
      'config.bad-json',
    );
  });

  it('config - secrets come from files without their trailing newline', () => {
    const path = writeConfig('hunter2\n');
    expect(resolveSecret(undefined, path)).toBe('hunter2');
    expect(resolveSecret('inline', path)).toBe('inline');
    expect(configError(() => resolveSecret(undefined, '/nonexistent/secret')).code).toBe(
      'config.secret-unreadable',
    );
  });
});
