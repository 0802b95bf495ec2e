// The terminal progress display: a bar per image and one overall, redrawn in place; nothing off a terminal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProgressDisplay, human } from '../../src/cli/progress.js';

describe('ProgressDisplay', () => {
  it('draws a bar per image and an overall bar with bytes, rate and ETA, moving up over the last frame', () => {
    const frames: string[] = [];
    const out = { columns: 120, write: (text: string) => frames.push(text) } as unknown as NodeJS.WriteStream;
    const display = new ProgressDisplay(out, 'all images');
    display.plan('docker.io/library/node:20', 100 * 1024 * 1024);
    display.plan(undefined, 200 * 1024 * 1024);
    display.add('docker.io/library/node:20', 50 * 1024 * 1024);
    display.stop();
    assert.equal(frames.length, 1);
    const [node, overall] = frames[0]!.split('\n');
    assert.match(node!, /docker\.io\/library\/node:20 +\[#{12}-{12}\] 50\.0 MiB\/100\.0 MiB .*\/s ETA \d+s/);
    assert.match(overall!, /all images +\[#{6}-{18}\] 50\.0 MiB\/200\.0 MiB/);
    display.finish('docker.io/library/node:20', 'done, 100.0 MiB');
    display.stop();
    assert.ok(frames[1]!.startsWith('\u001b[2F'), 'the second frame overwrites the first');
    assert.match(frames[1]!, /\[#{24}\] done, 100\.0 MiB/);
  });

  it('draws nothing without a terminal', () => {
    const display = new ProgressDisplay(undefined, 'x');
    display.plan(undefined, 10);
    display.add(undefined, 5);
    display.stop();
    assert.equal(human(1536), '1.5 KiB');
  });
});
