import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SCAVENGE_EVERY, Scavenger, youngCollector } from '../../src/storage/scavenger.js';

describe('Scavenger', () => {
  it('collects once every `every` bytes dropped, carrying nothing over', () => {
    let collections = 0;
    const s = new Scavenger(() => collections++, 1000);
    s.dropped(400);
    s.dropped(500);
    assert.equal(collections, 0, 'under the threshold');
    s.dropped(100);
    assert.equal(collections, 1, 'at the threshold');
    s.dropped(999);
    assert.equal(collections, 1);
    s.dropped(5000);
    assert.equal(collections, 2, 'one collection however far past the threshold');
  });

  it('does nothing without a collector', () => {
    assert.doesNotThrow(() => new Scavenger(undefined, 1).dropped(10));
  });

  // What a scavenge frees is a GC effect, measured by bench/probe-scavenger.ts rather than here.
  it('gets a collector in this process without exposing gc globally', () => {
    assert.equal(typeof globalThis.gc, 'undefined', 'the test runner does not pass --expose-gc');
    const collect = youngCollector();
    assert.equal(typeof collect, 'function');
    assert.doesNotThrow(() => new Scavenger(collect).dropped(SCAVENGE_EVERY));
    assert.equal(typeof globalThis.gc, 'undefined', 'gc is still not exposed to this realm');
  });
});
