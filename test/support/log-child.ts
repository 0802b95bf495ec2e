// A child process for test/unit/logger.test.ts: logs through jsonDestination into its stdout (a file the
// test opened), then ends as argv[2] says: "stay" (keeps running until killed), "exit" (process.exit(3)),
// "throw" (an uncaught exception) or "return" (the event loop runs dry).
import { createLogger, jsonDestination, requestLineWriter } from '../../src/observability/logger.js';

const ending = process.argv[2];
const lines = Number(process.argv[3] ?? 1);
const log = createLogger('info', jsonDestination(100)).child({ component: 'http' });
const writeLine = requestLineWriter(log)!;
for (let i = 0; i < lines; i++) writeLine({ requestId: `r-${i}`, method: 'GET', path: `/v2/é/manifests/${i}`, status: 200, bytes: i, cache: 'hit', ms: 0.5 });
log.info({ lines }, 'last line');
if (ending === 'stay') setInterval(() => undefined, 60_000);
if (ending === 'exit') process.exit(3);
if (ending === 'throw') setImmediate(() => {
  throw new Error('boom');
});
