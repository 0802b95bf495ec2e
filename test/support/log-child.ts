// A child process for test/unit/logger.test.ts: logs through jsonDestination into its stdout (a file the
// test opened), then ends as argv[2] says: "stay" (keeps running until killed), "exit" (process.exit(3)),
// "throw" (an uncaught exception) or "return" (the event loop runs dry); or "flood": its stdout is a pipe
// nobody reads, and after logging `lines` lines it reports on stderr how many were dropped, then waits to
// be killed (a write to that pipe never finishes, nor would an exit's).
import { writeSync } from 'node:fs';
import { createLogger, droppedLogLines, jsonDestination, requestLineWriter } from '../../src/observability/logger.js';

const ending = process.argv[2];
const lines = Number(process.argv[3] ?? 1);
const log = createLogger('info', jsonDestination(100)).child({ component: 'http' });
const writeLine = requestLineWriter(log)!;
const line = (i: number) => writeLine({ requestId: `r-${i}`, method: 'GET', path: `/v2/é/manifests/${i}`, status: 200, bytes: i, cache: 'hit', ms: 0.5 });
if (ending === 'flood') {
  // In turns of the event loop, as a server logs, so that the batches' writes start and block.
  let i = 0;
  const turn = () => {
    for (let k = 0; k < 1000 && i < lines; k++) line(i++);
    if (i < lines) return void setImmediate(turn);
    writeSync(2, `dropped ${droppedLogLines(log)}\n`);
    setInterval(() => undefined, 60_000);
  };
  turn();
} else {
  for (let i = 0; i < lines; i++) line(i);
}
if (ending !== 'flood') log.info({ lines }, 'last line');
if (ending === 'stay') setInterval(() => undefined, 60_000);
if (ending === 'exit') process.exit(3);
if (ending === 'throw') setImmediate(() => {
  throw new Error('boom');
});
