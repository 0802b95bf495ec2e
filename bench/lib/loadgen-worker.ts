// Closed-loop HTTP/1.1 load on plain node:net sockets, run as its own process by loadgen.ts: for HEADs
// (wrk 4.1 cannot read them) and for GETs when wrk is not installed. `connections` kept-alive sockets,
// each sending its next request when the previous response has been read, until `seconds` have passed.
// Prints one JSON object (LoadResult without `tool`) on stdout.
//
// It does what wrk does and no more: one prebuilt request buffer, a response parser that finds the end
// of the header block, the status and Content-Length, and skips the body. The generator it replaces ran
// undici's full client, and on this 2-core machine its own CPU time showed up as server latency: a bare
// node:http server answering HEADs from memory measured p99 3.6-8.6 ms through it (bench/NOTES.md §3).
import { connect, type Socket } from 'node:net';
import type { LoadSpec } from './loadgen.js';

/** Bound on recorded latencies (8 bytes each); at most a few hundred thousand requests per run here. */
const MAX_SAMPLES = 4_000_000;
const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;
const CHUNKED = /\r\ntransfer-encoding:[^\r]*chunked/i;
const CLOSE = /\r\nconnection:[ \t]*close/i;

interface Totals {
  count: number;
  non2xx: number;
  errors: number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const url = new URL(spec.url);
  if (url.protocol !== 'http:') throw new Error(`only http:// is supported (got ${spec.url})`);
  const port = Number(url.port || 80);
  const request = Buffer.from(
    `${spec.method} ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    Object.entries(spec.headers).map(([name, value]) => `${name}: ${value}\r\n`).join('') + '\r\n',
    'latin1',
  );
  const latencies = new Float64Array(MAX_SAMPLES);
  const totals: Totals = { count: 0, non2xx: 0, errors: 0 };
  const started = performance.now();
  const deadline = started + spec.seconds * 1000;
  const loop = (): Promise<void> => new Promise((resolve) => {
    let socket: Socket;
    let pending: Buffer | undefined; // an incomplete header block
    let bodyLeft = 0;
    let closeAfter = false;
    let finished = false;
    let sent = 0;
    const next = () => {
      if (performance.now() >= deadline || totals.count >= MAX_SAMPLES) {
        finished = true;
        socket.end();
        return resolve();
      }
      if (closeAfter) {
        const old = socket;
        open();
        return void old.destroy();
      }
      sent = performance.now();
      socket.write(request);
    };
    const complete = () => {
      latencies[totals.count++] = performance.now() - sent;
      next();
    };
    const onData = (chunk: Buffer) => {
      let data = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = undefined;
      while (data.length > 0) {
        if (bodyLeft > 0) {
          const taken = Math.min(bodyLeft, data.length);
          bodyLeft -= taken;
          data = data.subarray(taken);
          if (bodyLeft === 0) complete();
          continue;
        }
        const end = data.indexOf(HEADER_END);
        if (end < 0) {
          pending = data;
          return;
        }
        const head = data.toString('latin1', 0, end);
        data = data.subarray(end + HEADER_END.length);
        const status = Number(head.slice(9, 12));
        if (!(status >= 200 && status < 400)) totals.non2xx++;
        if (CHUNKED.test(head)) throw new Error('chunked responses are not supported by this generator');
        closeAfter = CLOSE.test(head);
        bodyLeft = spec.method === 'HEAD' || status === 204 || status === 304 ? 0 : Number(CONTENT_LENGTH.exec(head)?.[1] ?? 0);
        if (bodyLeft === 0) complete();
      }
    };
    const open = () => {
      pending = undefined;
      bodyLeft = 0;
      closeAfter = false;
      const own = connect({ host: url.hostname, port, noDelay: true }, next);
      socket = own;
      own.on('data', onData);
      own.on('error', () => undefined); // 'close' follows
      own.once('close', () => {
        if (own !== socket || finished) return;
        // The server closed a connection it had not announced it would: an error, then a new one.
        totals.errors++;
        if (performance.now() < deadline) setTimeout(open, 10);
        else {
          finished = true;
          resolve();
        }
      });
    };
    open();
  });
  await Promise.all(Array.from({ length: spec.connections }, loop));
  const seconds = (performance.now() - started) / 1000;
  const { count, non2xx, errors } = totals;
  const sorted = latencies.subarray(0, count).sort();
  const at = (p: number) => (count === 0 ? 0 : sorted[Math.min(count - 1, Math.floor((p / 100) * count))]!);
  process.stdout.write(JSON.stringify({
    requests: count, seconds, requestsPerSecond: count / seconds, p50Ms: at(50), p99Ms: at(99), non2xx, errors,
  }));
}

await main();
