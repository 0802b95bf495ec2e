// The CLI's side of /api/v1/jobs/ (http/jobs-router.ts): sends a job to the server that owns the data
// directory, with the directory's admin token, and reads back its NDJSON events or, for an export, the
// tarball. Used only on this host, against the URL the server announced in its lock file.
//
// node:http rather than undici: a command makes one or two requests over loopback, and loading undici
// costs a short command (warm of a small image, bench scenario 9) more start-up time than the whole
// transfer. node:https is loaded only for an https URL.
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ERROR_CODES, LongshoreError, type ErrorCode } from '../errors.js';
import { ADMIN_TOKEN_HEADER, type JobEvent } from '../jobs/events.js';

export class AdminClient {
  private readonly loopback: boolean;

  constructor(readonly url: string, private readonly token: string) {
    // The server's own certificate names the host clients use, not loopback; the token is only ever
    // sent to a loopback address (the lock file's URL is where the server listens on this host).
    const host = new URL(url).hostname;
    this.loopback = host === '127.0.0.1' || host === '[::1]' || host === '::1' || host === 'localhost';
  }

  /** Runs a job; events go to `onEvent` as they come; resolves with the `result` event, throws its `error`. */
  async job(kind: 'gc' | 'verify' | 'warm' | 'import', body: object | Readable, onEvent: (event: JobEvent) => void): Promise<Record<string, unknown>> {
    const streaming = typeof (body as Readable).pipe === 'function';
    const res = await this.post(`/api/v1/jobs/${kind}`, streaming ? 'application/x-tar' : 'application/json', streaming ? body as Readable : Buffer.from(JSON.stringify(body)));
    if (res.statusCode !== 200) throw await failure(res);
    res.setEncoding('utf8');
    let buffered = '';
    let result: Record<string, unknown> | undefined;
    const take = (line: string) => {
      if (line.trim() === '') return;
      const event = JSON.parse(line) as JobEvent;
      if (event.event === 'error') throw toError(event);
      if (event.event === 'result') result = event;
      else onEvent(event);
    };
    for await (const chunk of res) {
      buffered += chunk as string;
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
    const res = await this.post('/api/v1/jobs/export', 'application/json', Buffer.from(JSON.stringify(body)));
    if (res.statusCode !== 200) throw await failure(res);
    const size = Number(res.headers['content-length']);
    onSize(size);
    let received = 0;
    res.on('data', (chunk: Buffer) => {
      received += chunk.length;
      onBytes(chunk.length);
    });
    // A connection closed before Content-Length bytes is an error of its own ('aborted'), and a short count is checked too.
    await pipeline(res, out);
    if (received !== size) throw new LongshoreError('LS_INTERNAL', `the export ended after ${received} of ${size} bytes`);
    return { size, blobs: Number(res.headers['x-longshore-bundle-blobs']), omitted: Number(res.headers['x-longshore-bundle-omitted']) };
  }

  /** Nothing to release: each request has its own connection (no keep-alive pool to drain). */
  async close(): Promise<void> {}

  /** Sends a POST and resolves with the response's head; the body is streamed when it is a stream. */
  private async post(path: string, contentType: string, body: Buffer | Readable): Promise<IncomingMessage> {
    const target = new URL(path, this.url);
    const https = target.protocol === 'https:';
    const { request } = https ? await import('node:https') : await import('node:http');
    const options: RequestOptions & { rejectUnauthorized?: boolean } = {
      method: 'POST',
      agent: false,
      headers: { [ADMIN_TOKEN_HEADER]: this.token, 'content-type': contentType, ...(Buffer.isBuffer(body) ? { 'content-length': String(body.length) } : {}) },
      ...(https ? { rejectUnauthorized: !this.loopback } : {}),
    };
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req: ClientRequest = request(target, options);
      req.once('response', (res) => {
        // A refusal can come before the whole upload was sent: the answer is what counts, the upload stops.
        if (res.statusCode !== 200) res.once('end', () => req.destroy());
        resolve(res);
      });
      // Once answered, a failed upload shows in the answer (the job's error event, or a cut stream).
      req.on('error', (err) => reject(new LongshoreError('LS_INTERNAL', `the server at ${this.url} cannot be reached: ${err.message}`)));
      if (Buffer.isBuffer(body)) {
        req.end(body);
        return;
      }
      // The job answers (headers, then events) while the upload is still going: full duplex.
      body.once('error', (err) => req.destroy(err));
      body.pipe(req);
    });
  }
}

async function failure(res: IncomingMessage): Promise<LongshoreError> {
  const parts: Buffer[] = [];
  for await (const chunk of res) parts.push(chunk as Buffer);
  const text = Buffer.concat(parts).toString('utf8');
  const status = res.statusCode ?? 0;
  try {
    const body = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first?.message) return new LongshoreError(status === 401 || status === 403 ? 'LS_ADMIN_TOKEN_INVALID' : 'LS_INTERNAL', `the server answered ${status}: ${first.message}`);
  } catch {
    // not an OCI error body
  }
  return new LongshoreError('LS_INTERNAL', `the server answered ${status}: ${text.slice(0, 300)}`);
}

function toError(event: { code: string; message: string; detail?: unknown }): LongshoreError {
  const code = (ERROR_CODES as readonly string[]).includes(event.code) ? event.code as ErrorCode : 'LS_INTERNAL';
  return new LongshoreError(code, event.message, typeof event.detail === 'object' && event.detail !== null ? event.detail as Record<string, unknown> : undefined);
}
