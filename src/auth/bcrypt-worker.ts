// One thread of the password pool (password-pool.ts): compares passwords against bcrypt hashes so that
// the ~100 ms a check costs at cost 10 is spent off the event loop. One check at a time per thread; the
// pool never sends a second before the first is answered.
import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

export interface CheckRequest {
  id: number;
  password: string;
  hash: string;
}

export interface CheckReply {
  id: number;
  matches: boolean;
}

parentPort?.on('message', (request: CheckRequest) => {
  let matches = false;
  try {
    matches = bcrypt.compareSync(request.password, request.hash);
  } catch {
    // A malformed hash cannot match; the pool's hashes were validated at start-up anyway.
  }
  parentPort?.postMessage({ id: request.id, matches } satisfies CheckReply);
});
