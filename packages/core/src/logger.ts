/**
 * The logging interface libraries write to. Libraries never import a logging backend: they call
 * {@link makeLogger} and the agent plugs in pino with {@link setLoggerFactory}.
 */

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger; `fields` come first as in pino. */
export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: LogFields): Logger;
}

/** Makes the logger for one module (`namespace`). */
export type LoggerFactory = (namespace: string) => Logger;

/** Writes warnings and errors to stderr as one JSON line; drops debug and info. */
function stderrLogger(bindings: LogFields): Logger {
  const write = (level: string) => (fields: LogFields, message: string) => {
    process.stderr.write(`${JSON.stringify({ level, ...bindings, ...fields, msg: message })}\n`);
  };
  const drop = (): void => undefined;
  return {
    debug: drop,
    info: drop,
    warn: write('warn'),
    error: write('error'),
    child: (more) => stderrLogger({ ...bindings, ...more }),
  };
}

let factory: LoggerFactory = (namespace) => stderrLogger({ module: namespace });

/** Replaces the backend for every logger made afterwards. */
export function setLoggerFactory(next: LoggerFactory): void {
  factory = next;
}

/** The logger of one module, e.g. `makeLogger('health')`. */
export function makeLogger(namespace: string): Logger {
  return factory(namespace);
}

/** A logger that discards everything (tests, quiet CLI paths). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
