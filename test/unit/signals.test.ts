// The signals the composition root shares between services (src/signals.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ContentGrowth, DiskSpace } from '../../src/signals.js';

describe('DiskSpace', () => {
  const disk = (free: number | undefined) => new DiskSpace('/data', 1000, async (path) => (assert.equal(path, '/data'), free));

  it('is low only below the floor, and never when the filesystem cannot be asked', async () => {
    assert.equal(await disk(999).isLow(), true);
    assert.equal(await disk(1000).isLow(), false);
    assert.equal(await disk(undefined).isLow(), false);
  });

  it('passes each request for room to every listener', () => {
    const space = disk(0);
    const heard: string[] = [];
    space.onRelieve(() => heard.push('evictor'));
    space.onRelieve(() => heard.push('other'));
    space.relieve();
    assert.deepEqual(heard, ['evictor', 'other']);
  });
});

describe('ContentGrowth', () => {
  it('tells every listener at each growth, synchronously', () => {
    const growth = new ContentGrowth();
    let checks = 0;
    growth.listen(() => checks++);
    growth.grew();
    growth.grew();
    assert.equal(checks, 2);
  });
});
