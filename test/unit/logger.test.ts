import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, prettyDestination } from '../../src/observability/logger.js';

function sink(): { stream: Writable; text(): string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

describe('logger', () => {
  it('writes JSON lines by default, with secrets redacted', () => {
    const out = sink();
    createLogger('info', out.stream).info({ upstreams: { 'docker.io': { password: 'hunter2' } }, headers: { authorization: 'Bearer abc' } }, 'config');
    const record = JSON.parse(out.text()) as Record<string, unknown>;
    assert.equal(record.msg, 'config');
    assert.equal(record.level, 'info');
    assert.ok(!out.text().includes('hunter2') && !out.text().includes('Bearer abc'));
  });

  it('writes one readable line per record in pretty format, uncoloured off a TTY', () => {
    const out = sink();
    const log = createLogger('info', prettyDestination({ colorize: false, destination: out.stream }));
    log.child({ component: 'http' }).info({ requestId: 'r-1', password: 'hunter2' }, 'request');
    const line = out.text();
    assert.match(line, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[http\] request \{"requestId":"r-1","password":"\[redacted\]"\}\n$/);
    assert.ok(!line.includes('\u001b['), 'no colour escapes');
    assert.ok(!line.includes('hunter2'));
  });

  it('colours pretty output when asked (on a TTY)', () => {
    const out = sink();
    createLogger('info', prettyDestination({ colorize: true, destination: out.stream })).warn('careful');
    assert.ok(out.text().includes('\u001b['), 'colour escapes present');
  });
});
