/**
 * The agent's pino logger, plugged into core's logger interface so every package logs through
 * it. Secrets are redacted by path wherever they appear in logged objects.
 */
import { pino, type Logger as PinoLogger } from 'pino';
import { setLoggerFactory, type Logger } from '@georep/core';

/** Paths pino replaces with `[redacted]`. */
export const REDACT_PATHS = [
  'password',
  'pass',
  'token',
  '*.password',
  '*.pass',
  '*.token',
  '*.*.password',
  '*.*.token',
  'config.nats.password',
  'config.nats.token',
  'config.redis.password',
];

function wrap(p: PinoLogger): Logger {
  return {
    debug: (fields, msg) => p.debug(fields, msg),
    info: (fields, msg) => p.info(fields, msg),
    warn: (fields, msg) => p.warn(fields, msg),
    error: (fields, msg) => p.error(fields, msg),
    child: (bindings) => wrap(p.child(bindings)),
  };
}

/** Creates the root pino logger and routes every `makeLogger(module)` through it. */
export function installAgentLogger(
  level: string,
  bindings: { group: string; region: string },
): Logger {
  const root = pino({
    level,
    base: { ...bindings, pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  setLoggerFactory((module) => wrap(root.child({ module })));
  return wrap(root);
}
