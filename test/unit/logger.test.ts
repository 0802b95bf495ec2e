import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, prettyDestination, requestLineLogger } from '../../src/observability/logger.js';

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

  it('writes the request line without redaction exactly as the redacting logger does, and leaves the parent redacting', () => {
    const out = sink();
    const log = createLogger('info', out.stream).child({ component: 'http' });
    const lines = requestLineLogger(log);
    const line = { requestId: 'r-1', method: 'GET', path: '/v2/library/alpine/manifests/3?ns=docker.io', status: 200, bytes: 527, cache: 'hit', ms: 0.25, aborted: true };
    log.info(line, 'request');
    lines.info(line, 'request');
    const [redacted, plain] = out.text().trim().split('\n').map((text) => JSON.parse(text) as Record<string, unknown>);
    delete redacted!.time;
    delete plain!.time;
    assert.deepEqual(plain, redacted);
    assert.deepEqual(plain, { level: 'info', service: 'longshore', component: 'http', ...line, msg: 'request' });
    log.info({ headers: { authorization: 'Bearer abc' } }, 'other');
    assert.ok(!out.text().includes('Bearer abc'));
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
