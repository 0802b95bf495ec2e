// Read buffers for blob streams, reused once a socket has written them.
//
// A stream that reads a 1 GiB blob in 1 MiB chunks into fresh buffers makes 1,024 MiB of garbage that
// lives outside V8's heap; the garbage collector it provokes cost more CPU than the reads and writes
// themselves (bench/NOTES.md §1). Reused buffers keep memory flat and that CPU off the hot path.
//
// The invariant that keeps bytes intact: a chunk comes back to the pool only through release(), and
// only a caller that knows nothing references the bytes any more may call it: the HTTP layer, from a
// socket write's completion callback. A chunk released twice, or a buffer that is not from this pool, is
// ignored, so no two readers can ever fill the same memory.

import type { Scavenger } from './scavenger.js';

export interface ChunkPoolOptions {
  /** Bytes per chunk. */
  chunkSize: number;
  /** Free chunks kept for reuse; beyond this, released chunks are left to the garbage collector. */
  maxFree: number;
  /** Told about chunks let go, and (through the pool) about downloaded buffers that are garbage. */
  scavenger?: Scavenger;
}

export class ChunkPool {
  readonly chunkSize: number;
  private readonly maxFree: number;
  readonly scavenger: Scavenger | undefined;
  private readonly free: Buffer[] = [];
  /** The memory of every chunk now handed out, by its ArrayBuffer (a chunk may come back as a view). */
  private readonly lent = new WeakSet<ArrayBufferLike>();

  constructor({ chunkSize, maxFree, scavenger }: ChunkPoolOptions) {
    this.chunkSize = chunkSize;
    this.maxFree = maxFree;
    this.scavenger = scavenger;
  }

  /** A chunk of chunkSize bytes, with unspecified contents. */
  acquire(): Buffer {
    // allocUnsafeSlow: a chunk owns its whole ArrayBuffer and never shares Node's small-buffer slab.
    const chunk = this.free.pop() ?? Buffer.allocUnsafeSlow(this.chunkSize);
    this.lent.add(chunk.buffer);
    return chunk;
  }

  /**
   * Takes back a chunk from acquire(), or any view of one. The caller guarantees that nothing reads
   * the bytes any more. Buffers the pool did not lend (or already took back) are ignored.
   */
  release(chunk: Buffer): void {
    const memory = chunk.buffer;
    if (!this.lent.delete(memory)) return;
    // Beyond maxFree the chunk is garbage outside V8's heap; the scavenger frees it soon (scavenger.ts).
    if (this.free.length >= this.maxFree) return this.scavenger?.dropped(memory.byteLength);
    this.free.push(chunk.byteOffset === 0 && chunk.length === this.chunkSize ? chunk : Buffer.from(memory, 0, this.chunkSize));
  }

  /** Free chunks held now (for tests and metrics). */
  get idle(): number {
    return this.free.length;
  }
}

/** A stream whose chunks may be handed back to their pool once the consumer is done with them. */
export interface RecyclingStream {
  recycle(chunk: Buffer): void;
}

export function isRecycling(stream: object): stream is RecyclingStream {
  return typeof (stream as Partial<RecyclingStream>).recycle === 'function';
}
