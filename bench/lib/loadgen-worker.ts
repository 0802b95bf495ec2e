// Closed-loop HTTP load on undici, run as its own process by loadgen.ts when wrk is not installed:
// `connections` loops, each sending its next request when the previous answer has been read, until
// `seconds` have passed, every request on a kept-alive connection. Prints one JSON object (LoadResult
// without `tool`) on stdout.
import { Pool } from 'undici';
import type { LoadSpec } from './loadgen.js';

/** Bound on recorded latencies (8 bytes each); at most a few hundred thousand requests per run here. */
const MAX_SAMPLES = 4_000_000;

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, { connections: spec.connections, pipelining: 1 });
  const latencies = new Float64Array(MAX_SAMPLES);
  let count = 0;
  let non2xx = 0;
  let errors = 0;
  const started = performance.now();
  const deadline = started + spec.seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline && count < MAX_SAMPLES) {
      const sent = performance.now();
      try {
        // reset: false keeps the connection after a HEAD: undici closes it by default (undici#258).
        const res = await pool.request({ path: url.pathname + url.search, method: spec.method, headers: spec.headers, reset: false });
        await res.body.dump();
        if (res.statusCode >= 400) non2xx++;
        latencies[count++] = performance.now() - sent;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, loop));
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  const sorted = latencies.subarray(0, count).sort();
  const at = (p: number) => (count === 0 ? 0 : sorted[Math.min(count - 1, Math.floor((p / 100) * count))]!);
  process.stdout.write(JSON.stringify({
    requests: count, seconds, requestsPerSecond: count / seconds, p50Ms: at(50), p99Ms: at(99), non2xx, errors,
  }));
}

await main();
