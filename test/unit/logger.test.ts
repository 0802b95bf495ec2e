import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, prettyDestination, requestLineWriter, type RequestLine } from '../../src/observability/logger.js';
import { waitFor } from '../support/wait.js';
import { requestIds } from '../../src/http/middleware/request-context.js';

function sink(): { stream: Writable; text(): string; clear(): void } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text, clear: () => { text = ''; } };
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

  it('writes the request line byte for byte as the redacting logger does (bar the time), and leaves the logger redacting', () => {
    const out = sink();
    const log = createLogger('info', out.stream).child({ component: 'http' });
    const writeLine = requestLineWriter(log)!;
    const lines: RequestLine[] = [
      { requestId: 'r-1', method: 'GET', path: '/v2/library/alpine/manifests/3?ns=docker.io', status: 200, bytes: 527, cache: 'hit', ms: 0.25, aborted: true },
      { requestId: '0b5c4f6e-7a1d-4c8e-9f2a-3d5b6c7e8f90', method: 'HEAD', path: '/v2/a/manifests/x', status: 404, bytes: 0, cache: undefined, ms: 12.345678 },
      // A client chooses the path: quotes, backslashes, control and non-ASCII characters are escaped as JSON.
      { requestId: 'r-3', method: 'GET', path: '/v2/"a\\b"/\u0001\u001f\u2028é😀/manifests/%22', status: 400, bytes: 93, cache: 'none', ms: 1e-7 },
    ];
    for (const line of lines) {
      out.clear();
      log.info(line, 'request');
      writeLine(line);
      const [viaPino, written] = out.text().split('\n').filter(Boolean).map((text) => text.replace(/,"time":"[^"]+"/, ''));
      assert.equal(written, viaPino);
      const record = JSON.parse(written!) as Record<string, unknown>;
      assert.deepEqual(record, { level: 'info', service: 'longshore', component: 'http', ...JSON.parse(JSON.stringify(line)), msg: 'request' });
    }
    log.info({ headers: { authorization: 'Bearer abc' } }, 'other');
    assert.ok(!out.text().includes('Bearer abc'));
    // Above info there is no request line at all.
    assert.equal(requestLineWriter(createLogger('warn', out.stream)), undefined);
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

describe('batched JSON destination (logFlushInterval)', () => {
  const child = new URL('../support/log-child.ts', import.meta.url).pathname;
  /** Runs the child with its stdout in a file; returns the file's lines and the child. */
  function run(ending: string, lines: number) {
    const dir = mkdtempSync(join(tmpdir(), 'longshore-log-'));
    const file = join(dir, 'out.log');
    const fd = openSync(file, 'w');
    const proc = spawn(process.execPath, ['--import', 'tsx', child, ending, String(lines)], { stdio: ['ignore', fd, 'ignore'] });
    closeSync(fd);
    const read = () => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
    return { proc, read, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }

  for (const [ending, code] of [['return', 0], ['exit', 3], ['throw', 1]] as const) {
    it(`writes every waiting line when the process ends (${ending})`, async () => {
      const { proc, read, cleanup } = run(ending, 2000);
      try {
        const [exitCode] = (await once(proc, 'exit')) as [number];
        assert.equal(exitCode, code);
        const records = read();
        assert.equal(records.length, 2001);
        assert.deepEqual(records.slice(0, 2000).map((r) => r.requestId), Array.from({ length: 2000 }, (_, i) => `r-${i}`));
        assert.equal(records[1999]!.path, '/v2/é/manifests/1999');
        assert.equal(records[2000]!.msg, 'last line');
      } finally {
        cleanup();
      }
    });
  }

  it('drops lines, counting them, once 16 MiB wait for a reader that stopped reading, and keeps running', async () => {
    // stdout is a pipe this test never reads: after 64 KiB the child's batched write blocks, and lines pile up.
    const proc = spawn(process.execPath, ['--import', 'tsx', child, 'flood', '120000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      proc.stdout.pause();
      let err = '';
      proc.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      const reported = await waitFor(() => /dropped (\d+)/.exec(err) ?? undefined, { what: 'the child to report its dropped lines', timeoutMs: 60_000 });
      const dropped = Number(reported[1]);
      // ~180 bytes a line: 120,000 lines are ~21 MiB, of which at most 16 MiB wait and 64 KiB sit in the pipe.
      assert.ok(dropped > 10_000 && dropped < 120_000, `dropped ${dropped} of 120000`);
      assert.equal(proc.exitCode, null, 'the child is still running');
    } finally {
      proc.kill('SIGKILL');
      await once(proc, 'exit').catch(() => undefined);
    }
  });

  it('writes a lone line within the interval, with no later line and no exit to push it out', async () => {
    const { proc, read, cleanup } = run('stay', 1);
    try {
      const records = await waitFor(() => read().length === 2 && read(), { what: 'both lines in the file', timeoutMs: 10_000 });
      assert.equal(records[1]!.msg, 'last line');
      assert.equal(proc.exitCode, null, 'the child is still running');
    } finally {
      proc.kill('SIGKILL');
      await once(proc, 'exit').catch(() => undefined);
      cleanup();
    }
  });
});

describe('request ids', () => {
  it('are version-4 UUIDs in form, distinct within a process and between processes', () => {
    const a = requestIds();
    const b = requestIds();
    const ids = Array.from({ length: 1000 }, () => a());
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(new Set(ids).size, 1000);
    const other = b();
    assert.ok(!ids.includes(other));
    assert.notEqual(other.slice(0, 24), ids[0]!.slice(0, 24), 'each process (each generator) draws its own random part');
  });
});
