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
      timestamp: isoTimeOncePerMillisecond(),
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** Waiting lines are written once this many bytes are waiting (or when the interval runs out). */
const BATCH_BYTES = 4096;
/**
 * Waiting lines beyond this are dropped (sonic-boom's maxLength), when the reader of the output (a
 * container runtime's log driver, a pipe) stops reading: the server keeps serving and its memory stays
 * bounded, where a synchronous write would block every request.
 */
const MAX_WAITING_BYTES = 16 * 1024 * 1024;

/**
 * Where JSON lines go: standard output, written in batches (config `logFlushInterval`). A synchronous
 * write per line cost a warm manifest hit about a fifth of its CPU time at `info`, one request line per
 * request (bench/NOTES.md §3). pino writes what is waiting synchronously when the process exits, also
 * after an uncaught exception; a kill -9 loses at most one interval. `flushMs` 0: each line at once.
 */
export function jsonDestination(flushMs: number, fd = 1): DestinationStream {
  if (flushMs <= 0) return pino.destination({ dest: fd, sync: true });
  // In buffer mode: in its string mode sonic-boom measures the UTF-8 length of the whole waiting batch
  // on every line (Buffer.byteLength), which cost more than encoding the line once here.
  const batches = pino.destination({ dest: fd, sync: false, contentMode: 'buffer', minLength: BATCH_BYTES, maxLength: MAX_WAITING_BYTES, periodicFlush: flushMs });
  const destination = {
    /** Lines dropped because MAX_WAITING_BYTES were waiting (read by droppedLogLines). */
    droppedLines: 0,
    write: (line: string) => batches.write(Buffer.from(line) as unknown as string),
    flush: (cb?: (err?: Error) => void) => batches.flush(cb),
    flushSync: () => batches.flushSync(),
  };
  batches.on('drop', () => destination.droppedLines++);
  return destination as DestinationStream;
}

/** Lines `log`'s destination dropped because its reader stopped reading (jsonDestination); 0 for any other destination. */
export function droppedLogLines(log: Logger): number {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { droppedLines?: number };
  return stream.droppedLines ?? 0;
}

/**
 * pino's isoTime, formatting the date once per millisecond rather than once per line: under load many
 * lines share a millisecond, and the request line is written for every request.
 */
function isoTimeOncePerMillisecond(): () => string {
  let at = -1;
  let field = '';
  return () => {
    const now = Date.now();
    if (now !== at) {
      at = now;
      field = `,"time":"${new Date(now).toISOString()}"`;
    }
    return field;
  };
}

/** The request line's fields (http/middleware/request-context.ts): fixed, none secret, none an object. */
export interface RequestLine {
  requestId: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  cache: string | undefined;
  ms: number;
  aborted?: boolean;
}

/**
 * Writes the one request line per request into `log`'s destination at `info`, as `log.info(line,
 * 'request')` would write it (test/unit/logger.test.ts compares the two byte for byte, bar the time), or
 * returns undefined when `log` is above `info` (the level is read once). It builds the line itself: the
 * fields are fixed and none is a key REDACTED_PATHS names, so redaction would never change it, and the
 * generic serialiser was most of the cost of logging it: through pino's redacting logger ~60 µs of a ~180
 * µs warm manifest hit under scenario 5's load went to scanning the record for paths it did not have, and
 * pino's own serialising was still ~6 % of a hit after that was skipped (bench/NOTES.md §3). The level
 * label, the time and the bindings (service, component) come from `log` itself. Anything that logs an
 * object it did not build itself must use a redacting logger.
 */
export function requestLineWriter(log: Logger): ((line: RequestLine) => void) | undefined {
  if (!log.isLevelEnabled('info')) return undefined;
  const internals = log as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write(line: string): unknown };
  const time = internals[pino.symbols.timeSym] as () => string;
  const bindings = internals[pino.symbols.chindingsSym] as string;
  const head = `{"level":"info"`;
  return (line) => {
    const cache = line.cache === undefined ? '' : `,"cache":${JSON.stringify(line.cache)}`;
    const aborted = line.aborted === undefined ? '' : `,"aborted":${line.aborted}`;
    stream.write(`${head}${time()}${bindings},"requestId":${JSON.stringify(line.requestId)},"method":${JSON.stringify(line.method)},"path":${JSON.stringify(line.path)},"status":${line.status},"bytes":${line.bytes}${cache},"ms":${line.ms}${aborted},"msg":"request"}\n`);
  };
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
