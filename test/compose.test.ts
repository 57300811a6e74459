/**
 * docker-compose.yml cannot run on machines without a Docker engine (CI has none), so its inputs
 * are checked here against the real parsers: every agent config validates and every NATS config
 * is accepted by nats-server itself.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '@georep/core';
import { findBinary } from '@georep/testkit';

const root = fileURLToPath(new URL('..', import.meta.url));
const regions = ['eu-west', 'us-east', 'ap-south'];

describe('docker compose inputs', () => {
  it('compose - every agent config validates and lists the nodes compose starts', () => {
    const compose = readFileSync(`${root}/docker-compose.yml`, 'utf8');
    for (const region of regions) {
      const file = `${root}/deploy/compose/agent-${region}.json`;
      const config = parseAgentConfig(JSON.parse(readFileSync(file, 'utf8')), file);
      expect(config.region).toBe(region);
      for (const node of config.redis.nodes) expect(compose).toContain(`  ${node.host}:`);
      expect(compose).toContain(`./deploy/compose/agent-${region}.json:/etc/georep/agent.json`);
    }
  });

  it('compose - nats-server accepts every region config', () => {
    const natsServer = findBinary('nats-server');
    for (const region of regions) {
      const out = execFileSync(
        natsServer,
        ['-t', '-c', `${root}/deploy/compose/nats-${region}.conf`],
        { encoding: 'utf8', stdio: 'pipe' },
      );
      expect(out + '').not.toMatch(/error/i);
    }
  });
});
