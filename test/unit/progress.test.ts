// The terminal progress display (cli-progress's MultiBar behind ProgressDisplay): an overall bar and a bar
// per image with bytes, rate and ETA on a terminal; nothing at all off a terminal or with --json.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { ProgressDisplay, human } from '../../src/cli/progress.js';

/** A stream that says it is a terminal and keeps what is written to it. */
function fakeStream(isTTY: boolean): { stream: NodeJS.WritableStream; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  Object.assign(stream, { isTTY, columns: 160 });
  return { stream, text: () => chunks.join('') };
}

/** What is left on screen: escape sequences removed, lines split. */
function screen(text: string): string[] {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '').split('\n').filter((l) => l.trim() !== '');
}

const displays: ProgressDisplay[] = [];
afterEach(() => {
  for (const d of displays.splice(0)) d.stop();
});

describe('ProgressDisplay', () => {
  it('draws an overall bar and a bar per image with the label, byte counts, a rate and an ETA', () => {
    const { stream, text } = fakeStream(true);
    const display = new ProgressDisplay(stream, 'all images');
    displays.push(display);
    display.plan('docker.io/library/node:20', 100 * 1024 * 1024);
    display.plan(undefined, 200 * 1024 * 1024);
    display.add('docker.io/library/node:20', 50 * 1024 * 1024);
    display.stop();
    const lines = screen(text());
    const node = lines.findLast((l) => l.includes('docker.io/library/node:20'));
    const overall = lines.findLast((l) => l.includes('all images'));
    assert.ok(node, `an image bar is drawn:\n${lines.join('\n')}`);
    assert.ok(overall, `an overall bar is drawn:\n${lines.join('\n')}`);
    assert.match(node, /\[#{12}-{12}\] 50\.0 MiB\/100\.0 MiB [\d.]+ [KMGT]?i?B\/s ETA \d+/);
    assert.match(overall, /\[#{6}-{18}\] 50\.0 MiB\/200\.0 MiB [\d.]+ [KMGT]?i?B\/s/);
    assert.equal(process.listenerCount('SIGINT') > 0, false, 'stop() removes the Ctrl-C handler');
  });

  it('shows a finished image full with its note, and bytes without a total before the plan is known', () => {
    const { stream, text } = fakeStream(true);
    const display = new ProgressDisplay(stream, 'bundle');
    displays.push(display);
    display.add('docker.io/library/alpine:3.19', 1536);
    display.plan('docker.io/library/node:20', 1024);
    display.add('docker.io/library/node:20', 1024);
    display.finish('docker.io/library/node:20', 'done, 1.0 KiB');
    display.stop();
    const lines = screen(text());
    assert.match(lines.findLast((l) => l.includes('alpine:3.19'))!, /\] 1\.5 KiB [\d.]+ [KMGT]?i?B\/s$/);
    assert.match(lines.findLast((l) => l.includes('node:20'))!, /\[#{24}\] done, 1\.0 KiB \(1\.0 KiB\/1\.0 KiB, [\d.]+ [KMGT]?i?B\/s\)$/);
  });

  it('lets finished images scroll away once more than twelve are on screen', () => {
    const { stream, text } = fakeStream(true);
    const display = new ProgressDisplay(stream, 'all images');
    displays.push(display);
    for (let i = 0; i < 14; i++) {
      display.plan(`img${i}:1`, 10);
      display.add(`img${i}:1`, 10);
    }
    display.finish('img0:1', 'done');
    display.finish('img1:1', 'done');
    const before = text().length;
    display.stop();
    const lastFrame = screen(text().slice(before)).join('\n');
    assert.equal(lastFrame.includes('img0:1'), false, 'img0 left the bars');
    assert.equal(lastFrame.includes('img1:1'), false, 'img1 left the bars');
    assert.match(lastFrame, /img13:1 +\[#{24}\] 10 B\/10 B/);
    assert.match(screen(text()).join('\n'), /img0:1 +\[#{24}\] done/, 'a finished image is printed once above the bars');
  });

  it('writes nothing to a stream that is not a terminal, nor without a stream', () => {
    const { stream, text } = fakeStream(false);
    for (const display of [new ProgressDisplay(stream, 'x'), new ProgressDisplay(undefined, 'x')]) {
      display.plan(undefined, 10);
      display.plan('a:1', 10);
      display.add('a:1', 5);
      display.finish('a:1', 'done');
      display.stop();
    }
    assert.equal(text(), '');
    assert.equal(process.listenerCount('SIGINT'), 0, 'no Ctrl-C handler off a terminal');
  });

  it('formats sizes in binary units', () => {
    assert.equal(human(1536), '1.5 KiB');
    assert.equal(human(512), '512 B');
  });
});
