/**
 * Validation of heartbeats received over NATS. Anything can be published on a subject, so a
 * message is trusted only after this check; a bad one is counted and dropped, never thrown.
 */
import { isValidName, type Heartbeat, type NodeSample } from '@georep/core';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function isNodeSample(v: unknown): v is NodeSample {
  return (
    isObject(v) &&
    isString(v.id) &&
    isString(v.host) &&
    isNumber(v.port) &&
    typeof v.up === 'boolean' &&
    (v.role === 'primary' || v.role === 'replica') &&
    isNumber(v.sampledAt)
  );
}

/**
 * Decodes and checks a heartbeat. Returns the heartbeat, or a reason it was rejected.
 * `group` must match: a heartbeat of another group on our subject is a misconfiguration.
 */
export function decodeHeartbeat(data: Uint8Array, group: string): Heartbeat | { rejected: string } {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return { rejected: 'not JSON' };
  }
  if (!isObject(value)) return { rejected: 'not an object' };
  if (value.v !== 1) return { rejected: `unsupported heartbeat version ${String(value.v)}` };
  if (value.group !== group) return { rejected: `heartbeat of group ${String(value.group)}` };
  const agent = value.agent;
  if (
    !isString(value.region) ||
    !isValidName(value.region) ||
    !isNumber(value.seq) ||
    !isNumber(value.sentAt) ||
    !isObject(agent) ||
    !isString(agent.id) ||
    !isString(agent.version) ||
    !isNumber(agent.startedAt) ||
    !Array.isArray(value.nodes) ||
    !value.nodes.every(isNodeSample) ||
    !isObject(value.view) ||
    !Object.values(value.view).every((s) => s === 'up' || s === 'suspect') ||
    (value.docHeads !== undefined &&
      (!Array.isArray(value.docHeads) || !value.docHeads.every(isString)))
  ) {
    return { rejected: 'missing or mistyped fields' };
  }
  return value as unknown as Heartbeat;
}
