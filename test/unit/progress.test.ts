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

/**
 * What a terminal shows after `text`: a small emulator of the sequences node:readline writes for
 * cli-progress (cursor up/down, to a column, clear line parts, clear below), so assertions do not depend
 * on how many frames the redraw timer happened to draw.
 */
function screen(text: string): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    const line = lines[row]!.padEnd(col);
    lines[row] = line.slice(0, col) + ch + line.slice(col + 1);
    col++;
  };
  // eslint-disable-next-line no-control-regex
  const pattern = /\u001b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\u001b\r\n]/g;
  for (const [token, params, command] of text.matchAll(pattern)) {
    if (token === '\n') {
      row++;
      col = 0;
      lines[row] ??= '';
    } else if (token === '\r') col = 0;
    else if (command === undefined) put(token);
    else {
      const n = Number(params || '1');
      if (command === 'A') row = Math.max(0, row - n);
      else if (command === 'B') row += n;
      else if (command === 'G') col = n - 1;
      else if (command === 'K') lines[row] = params === '2' ? '' : params === '1' ? ' '.repeat(col) + lines[row]!.slice(col) : lines[row]!.slice(0, col);
      else if (command === 'J') {
        lines.length = row + 1;
        lines[row] = lines[row]!.slice(0, col);
      }
      lines[row] ??= '';
    }
  }
  return lines.map((l) => l.trimEnd()).filter((l) => l !== '');
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

  it('lets finished images scroll away once more than twelve are on screen, whatever frames were drawn between', async () => {
    const { stream, text } = fakeStream(true);
    const display = new ProgressDisplay(stream, 'all images');
    displays.push(display);
    for (let i = 0; i < 14; i++) {
      display.plan(`img${i}:1`, 10);
      display.add(`img${i}:1`, 10);
    }
    // Let the redraw timer draw frames in between (the end state must not depend on them).
    await new Promise((resolve) => setTimeout(resolve, 250));
    display.finish('img0:1', 'done');
    await new Promise((resolve) => setTimeout(resolve, 250));
    display.finish('img1:1', 'done');
    display.stop();
    const shown = screen(text());
    // Above the bars, once each: the finished images that scrolled away. Then the overall bar and twelve image bars.
    assert.match(shown[0]!, /^img0:1 +\[#{24}\] done/);
    assert.match(shown[1]!, /^img1:1 +\[#{24}\] done/);
    assert.match(shown[2]!, /^all images +\[-{24}\] 140 B [\d.]+ [KMGT]?i?B\/s$/);
    assert.deepEqual(shown.slice(3).map((l) => l.split(' ')[0]), Array.from({ length: 12 }, (_, i) => `img${i + 2}:1`));
    assert.equal(shown.filter((l) => l.startsWith('img0:1')).length, 1, 'img0 is no longer a bar');
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
