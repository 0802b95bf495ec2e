// The CLI's side of /api/v1/jobs/ (http/jobs-router.ts): sends a job to the server that owns the data
// directory, with the directory's admin token, and reads back its NDJSON events or, for an export, the
// tarball. Used only on this host, against the URL the server announced in its lock file.
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, request, type Dispatcher } from 'undici';
import { ERROR_CODES, LongshoreError, type ErrorCode } from '../errors.js';
import { ADMIN_TOKEN_HEADER, type JobEvent } from '../jobs/events.js';

export class AdminClient {
  private readonly dispatcher: Dispatcher;

  constructor(readonly url: string, private readonly token: string) {
    // The server's own certificate names the host clients use, not loopback; the token is only ever
    // sent to a loopback address (the lock file's URL is where the server listens on this host).
    const host = new URL(url).hostname;
    const loopback = host === '127.0.0.1' || host === '[::1]' || host === '::1' || host === 'localhost';
    this.dispatcher = new Agent({ bodyTimeout: 0, headersTimeout: 0, connect: { rejectUnauthorized: !loopback } });
  }

  /** Runs a job; events go to `onEvent` as they come; resolves with the `result` event, throws its `error`. */
  async job(kind: 'gc' | 'verify' | 'warm' | 'import', body: object | Readable, onEvent: (event: JobEvent) => void): Promise<Record<string, unknown>> {
    const streaming = typeof (body as Readable).pipe === 'function';
    const res = await request(`${this.url}/api/v1/jobs/${kind}`, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { [ADMIN_TOKEN_HEADER]: this.token, 'content-type': streaming ? 'application/x-tar' : 'application/json' },
      body: streaming ? body as Readable : JSON.stringify(body),
    });
    if (res.statusCode !== 200) throw await failure(res);
    let buffered = '';
    let result: Record<string, unknown> | undefined;
    const take = (line: string) => {
      if (line.trim() === '') return;
      const event = JSON.parse(line) as JobEvent;
      if (event.event === 'error') throw toError(event);
      if (event.event === 'result') result = event;
      else onEvent(event);
    };
    for await (const chunk of res.body) {
      buffered += (chunk as Buffer).toString('utf8');
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        take(buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    }
    take(buffered);
    if (!result) throw new LongshoreError('LS_INTERNAL', `the server's ${kind} job ended without a result`);
    return result;
  }

  /** Streams an export into `out`; throws unless exactly Content-Length bytes arrived. */
  async exportTo(body: object, out: Writable, onBytes: (n: number) => void, onSize: (n: number) => void): Promise<{ size: number; blobs: number; omitted: number }> {
    const res = await request(`${this.url}/api/v1/jobs/export`, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { [ADMIN_TOKEN_HEADER]: this.token, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.statusCode !== 200) throw await failure(res);
    const size = Number(res.headers['content-length']);
    onSize(size);
    let received = 0;
    res.body.on('data', (chunk: Buffer) => {
      received += chunk.length;
      onBytes(chunk.length);
    });
    await pipeline(res.body, out);
    if (received !== size) throw new LongshoreError('LS_INTERNAL', `the export ended after ${received} of ${size} bytes`);
    return { size, blobs: Number(res.headers['x-longshore-bundle-blobs']), omitted: Number(res.headers['x-longshore-bundle-omitted']) };
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

async function failure(res: Dispatcher.ResponseData): Promise<LongshoreError> {
  const text = await res.body.text();
  try {
    const body = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first?.message) return new LongshoreError(res.statusCode === 401 || res.statusCode === 403 ? 'LS_ADMIN_TOKEN_INVALID' : 'LS_INTERNAL', `the server answered ${res.statusCode}: ${first.message}`);
  } catch {
    // not an OCI error body
  }
  return new LongshoreError('LS_INTERNAL', `the server answered ${res.statusCode}: ${text.slice(0, 300)}`);
}

function toError(event: { code: string; message: string; detail?: unknown }): LongshoreError {
  const code = (ERROR_CODES as readonly string[]).includes(event.code) ? event.code as ErrorCode : 'LS_INTERNAL';
  return new LongshoreError(code, event.message, typeof event.detail === 'object' && event.detail !== null ? event.detail as Record<string, unknown> : undefined);
}
