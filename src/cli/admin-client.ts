// The CLI's side of /api/v1/jobs/ (http/jobs-router.ts): sends a job to the server that owns the data
// directory, with the directory's admin token, and reads back its NDJSON events or, for an export, the
// tarball. Used only on this host, against the URL the server announced in its lock file.
//
// node:http rather than undici: a command makes one or two requests over loopback, and loading undici
// costs a short command (warm of a small image, bench scenario 9) more start-up time than the whole
// transfer. node:https is loaded only for an https URL.
//
// Over HTTPS the server's certificate names the host its clients use, not the loopback address the
// command connects to, so host-name verification cannot work. The command checks instead that the
// certificate is the one the server recorded in the lock file beside the URL (its SHA-256 fingerprint),
// and sends the token only over a connection that passed: a process that took over the port of a server
// gone meanwhile gets nothing. A URL that is not loopback is verified as any HTTPS client would.
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ERROR_CODES, LongshoreError, type ErrorCode } from '../errors.js';
import { ADMIN_TOKEN_HEADER, type JobEvent } from '../jobs/events.js';

export class AdminClient {
  private readonly loopback: boolean;

  /** `certificate`: the fingerprint the server recorded for an HTTPS `url` (LockOwner.adminCertificate). */
  constructor(readonly url: string, private readonly token: string, private readonly certificate?: string) {
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

  /**
   * A TLS connection to a loopback `target` whose certificate has the recorded fingerprint; nothing is
   * sent on it before the check. Throws LS_ADMIN_SERVER_UNTRUSTED when no fingerprint was recorded or
   * another certificate answers.
   */
  private async pinnedConnection(target: URL): Promise<Socket> {
    const expected = this.certificate;
    if (!expected) {
      throw new LongshoreError('LS_ADMIN_SERVER_UNTRUSTED', `the lock file names ${this.url} but no certificate fingerprint for it (a server of an older version?); the admin token was not sent`);
    }
    const { connect } = await import('node:tls');
    return new Promise<Socket>((resolve, reject) => {
      // The check is the fingerprint below, not the chain: the certificate names another host.
      const socket = connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port || 443), rejectUnauthorized: false });
      socket.once('secureConnect', () => {
        socket.off('error', fail);
        const seen = socket.getPeerCertificate().fingerprint256;
        if (seen === expected) return resolve(socket);
        socket.destroy();
        reject(new LongshoreError('LS_ADMIN_SERVER_UNTRUSTED', `${this.url} answered with certificate ${seen}, not the server's ${expected} recorded in the lock file; the admin token was not sent`, { seen, expected }));
      });
      const fail = (err: Error) => reject(new LongshoreError('LS_INTERNAL', `the server at ${this.url} cannot be reached: ${err.message}`));
      socket.once('error', fail);
    });
  }

  /** Nothing to release: each request has its own connection (no keep-alive pool to drain). */
  async close(): Promise<void> {}

  /** Sends a POST and resolves with the response's head; the body is streamed when it is a stream. */
  private async post(path: string, contentType: string, body: Buffer | Readable): Promise<IncomingMessage> {
    const target = new URL(path, this.url);
    const https = target.protocol === 'https:';
    const { request } = https ? await import('node:https') : await import('node:http');
    const socket = https && this.loopback ? await this.pinnedConnection(target) : undefined;
    const options: RequestOptions = {
      method: 'POST',
      headers: { [ADMIN_TOKEN_HEADER]: this.token, 'content-type': contentType, ...(Buffer.isBuffer(body) ? { 'content-length': String(body.length) } : {}) },
      // node:http uses createConnection only when no agent is named (`agent: false` makes one).
      ...(socket ? { createConnection: () => socket } : { agent: false }),
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
