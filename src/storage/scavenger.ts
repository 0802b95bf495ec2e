// Frees the socket buffers a download leaves behind, long before V8 would on its own.
//
// undici hands an upstream body over as views of the buffers Node allocates for each socket read (up
// to 64 KiB each, outside V8's heap). Once a download has written them to disk they are garbage, but
// V8 frees them only in a collection, and a download allocates little inside the heap, so collections
// are rare: with 8 clients on a cold 1 GiB layer this garbage grew to 55-64 MB before V8 collected it,
// and the process's peak RSS was 160-180 MB (bench/NOTES.md §2). A young-generation collection (a
// scavenge: little is young here, so it is short) every few MiB downloaded frees the buffers while
// they are young. In the same probe: peak RSS 143-149 MB, and no more CPU per GiB than before. Pool
// chunks the ChunkPool lets go are reported the same way. The composition root makes one scavenger and
// gives it to the content store's ChunkPool; downloads report through that pool.
//
// Node exposes the collector only behind --expose-gc. Setting the flag at start-up gives a fresh
// context that has `gc`, without exposing it to this realm, so `node dist/main.js` behaves the same
// however it is started. Where that is not possible, the scavenger does nothing: memory is then as
// high as it would be without it, and nothing else changes.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Dropped bytes between scavenges (16 MiB left the peak at 152-168 MB in the probe, 4 MiB at 143-149). */
export const SCAVENGE_EVERY = 4 * 1024 * 1024;

type Collect = () => void;

export class Scavenger {
  private pending = 0;

  constructor(private readonly collect: Collect | undefined, private readonly every = SCAVENGE_EVERY) {}

  /** Notes `bytes` of socket buffers that nothing refers to any more; scavenges once enough add up. */
  dropped(bytes: number): void {
    if (!this.collect) return;
    this.pending += bytes;
    if (this.pending < this.every) return;
    this.pending = 0;
    this.collect();
  }
}

/** A young-generation collection of this process, or undefined where Node will not give one. */
export function youngCollector(): Collect | undefined {
  try {
    const gc = globalThis.gc ?? exposeGc();
    return typeof gc === 'function' ? () => gc({ type: 'minor' }) : undefined;
  } catch {
    return undefined;
  }
}

function exposeGc(): NodeJS.GCFunction | undefined {
  setFlagsFromString('--expose-gc');
  try {
    return runInNewContext('gc') as NodeJS.GCFunction | undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
