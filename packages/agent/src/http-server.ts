/**
 * The agent's HTTP endpoint: `GET /healthz` (200 when the agent is connected to NATS and can
 * reach a Redis node of its region, else 503; the body always has the region view) and
 * `GET /metrics` (Prometheus text format).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AgentMetrics } from './metrics.js';
import type { LinkState, RegionState } from '@georep/core';

/** What `/healthz` reports. */
export interface HealthDocument {
  ok: boolean;
  group: string;
  region: string;
  natsConnected: boolean;
  redisReachable: boolean;
  linkState: LinkState | null;
  fenced: boolean;
  regions: Record<string, RegionState>;
}

/** Starts the HTTP server; resolves with the bound port. */
export async function startHttpServer(
  host: string,
  port: number,
  health: () => HealthDocument,
  metrics: AgentMetrics,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      const doc = health();
      res
        .writeHead(doc.ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify(doc));
      return;
    }
    if (path === '/metrics') {
      metrics
        .render()
        .then((text) =>
          res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        )
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
      return;
    }
    res
      .writeHead(404, { 'content-type': 'text/plain' })
      .end('not found: try /healthz or /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
