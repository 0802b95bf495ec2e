import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkPool, isRecycling } from '../../src/storage/chunk-pool.js';
import { Scavenger } from '../../src/storage/scavenger.js';

describe('ChunkPool', () => {
  it('hands a released chunk out again, whole, also when it came back as a view', () => {
    const pool = new ChunkPool({ chunkSize: 4096, maxFree: 4 });
    const first = pool.acquire();
    assert.equal(first.length, 4096);
    pool.release(first.subarray(0, 100));
    assert.equal(pool.idle, 1);
    const again = pool.acquire();
    assert.equal(again.buffer, first.buffer);
    assert.equal(again.length, 4096);
    assert.equal(pool.idle, 0);
  });

  it('ignores a second release of the same chunk, so two readers never share memory', () => {
    const pool = new ChunkPool({ chunkSize: 1024, maxFree: 4 });
    const chunk = pool.acquire();
    pool.release(chunk);
    pool.release(chunk);
    pool.release(chunk.subarray(10));
    assert.equal(pool.idle, 1);
    const a = pool.acquire();
    const b = pool.acquire();
    assert.notEqual(a.buffer, b.buffer);
  });

  it('ignores buffers it did not lend', () => {
    const pool = new ChunkPool({ chunkSize: 1024, maxFree: 4 });
    pool.release(Buffer.allocUnsafeSlow(1024));
    pool.release(Buffer.alloc(10));
    assert.equal(pool.idle, 0);
  });

  it('keeps at most maxFree chunks, and tells its scavenger about each one it lets go', () => {
    const dropped: number[] = [];
    const scavenger = new Scavenger(undefined);
    scavenger.dropped = (bytes) => void dropped.push(bytes);
    const pool = new ChunkPool({ chunkSize: 1024, maxFree: 2, scavenger });
    const chunks = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const chunk of chunks) pool.release(chunk);
    assert.equal(pool.idle, 2);
    assert.deepEqual(dropped, [1024]);
  });

  it('tells recycling streams from others', () => {
    assert.equal(isRecycling({ recycle: () => undefined }), true);
    assert.equal(isRecycling({}), false);
  });
});
