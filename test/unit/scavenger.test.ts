import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getHeapSpaceStatistics } from 'node:v8';
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

  it('gets a collector in this process without exposing gc globally', () => {
    assert.equal(typeof globalThis.gc, 'undefined', 'the test runner does not pass --expose-gc');
    const young = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_used_size;
    let junk: object[] | undefined = [];
    for (let i = 0; i < 5000; i++) junk.push({ i });
    junk = undefined;
    const full = young();
    new Scavenger(youngCollector()).dropped(SCAVENGE_EVERY); // a scavenge, synchronously
    const after = young();
    assert.ok(full - after >= 100_000, `the young generation was collected: ${full} → ${after} bytes used`);
  });
});
