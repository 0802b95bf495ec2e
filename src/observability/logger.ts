// The root pino logger. Messages are static lower-case phrases; data goes in fields; each module logs
// through a child with a `component` field. Credentials never reach the output: known secret fields are
// redacted wherever they appear, and no module logs request or upstream headers wholesale.
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import type prettyFactory from 'pino-pretty';

export const REDACTED_PATHS = [
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers.cookie',
  '*.headers.cookie',
  'upstreams.*.password',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'longshore' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * A child of `log` that does not run the redaction, for the one request line per request (http/
 * middleware/request-context.ts) and nothing else. Its fields are fixed: request id, method, path (a
 * string), status, bytes, cache outcome, ms, aborted; none is a key REDACTED_PATHS names, and no value is
 * an object, so redaction never changes that line. It did cost: ~60 µs of a ~180 µs warm manifest hit
 * under scenario 5's load went to scanning and copying the record for paths it did not have
 * (bench/NOTES.md §3). Anything that logs an object it did not build itself must use a redacting logger.
 */
export function requestLineLogger(log: Logger): Logger {
  return log.child({}, { redact: [] });
}

/**
 * Human-readable output (`logFormat: "pretty"`) for a terminal: one line per record, level and
 * message first, fields after. Formatted in-process, synchronously, so nothing is lost at exit.
 */
export function prettyDestination(options: { colorize: boolean; destination?: NodeJS.WritableStream | number }): DestinationStream {
  // Loaded only for pretty output: JSON logging, the production default, never pays for it.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof prettyFactory;
  return pretty({
    colorize: options.colorize,
    destination: options.destination ?? 1,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service,component',
    messageFormat: '{if component}[{component}] {end}{msg}',
    singleLine: true,
  });
}
