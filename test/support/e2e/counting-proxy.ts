// A streaming reverse proxy in front of the upstream registry that records every request, so tests
// can count what Longshore asked the upstream for ("each blob fetched once", "a warm pull made no
// blob GETs"). Headers pass through unchanged in both directions: the Host header stays the
// proxy's, so URLs the registry builds point back here, and WWW-Authenticate keeps its realm
// pointing straight at the token server. Fault switches simulate an unhealthy upstream.
import { request as httpRequest, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type RequestKind = 'manifest' | 'blob' | 'other';

export interface RecordedRequest {
  method: string;
  path: string;
  kind: RequestKind;
  /** Repository name for manifest and blob requests, e.g. `library/alpine`. */
  repository?: string;
  /** Tag or digest for manifests, digest for blobs. */
  reference?: string;
  /** Response status; 0 when no response was sent (connection reset, upstream unreachable). */
  status: number;
  /** Response body bytes that reached the client. */
  bytes: number;
  accept?: string;
  /** True once the response ended or the exchange failed. */
  done: boolean;
  /** performance.now() when the request arrived, and when its response ended or failed (0 before). */
  startedAt: number;
  endedAt: number;
}

export type Fault =
  /** Answer every request with 503 and an OCI error body, as an upstream in maintenance might. */
  | { kind: 'unavailable' }
  /** Destroy each client connection without a response, as a crashed upstream would. */
  | { kind: 'reset' }
  /** Forward blob GETs but cut the body off after `afterBytes` bytes. */
  | { kind: 'truncate-blobs'; afterBytes: number };

const ROUTE = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/;

export class CountingProxy {
  readonly requests: RecordedRequest[] = [];
  /** Active fault, or null to pass traffic through. */
  fault: Fault | null = null;
  /** TCP connections accepted since start or the last reset(). */
  connections = 0;
  private readonly target: URL;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  private constructor(targetUrl: string) {
    this.target = new URL(targetUrl);
    this.server = createServer((req, res) => this.forward(req, res));
    this.server.on('connection', (socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  static async start(targetUrl: string): Promise<CountingProxy> {
    const proxy = new CountingProxy(targetUrl);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  reset(): void {
    this.requests.length = 0;
    this.connections = 0;
  }

  /** Requests of one kind, optionally narrowed to one method. */
  ofKind(kind: RequestKind, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.kind === kind && (method === undefined || r.method === method));
  }

  /** Digests of all blob GETs in arrival order, whatever their answer; repeats appear repeatedly. */
  blobGets(): string[] {
    return this.ofKind('blob', 'GET').map((r) => r.reference!);
  }

  manifestGets(): RecordedRequest[] {
    return this.ofKind('manifest', 'GET');
  }

  /**
   * How many times each digest was fetched: blob GETs, except those answered 401, which are the
   * token challenge that precedes a fetch rather than a fetch.
   */
  blobFetchCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.ofKind('blob', 'GET')) {
      if (r.status !== 401) counts.set(r.reference!, (counts.get(r.reference!) ?? 0) + 1);
    }
    return counts;
  }

  /** Total response body bytes sent to the client for blob GETs. */
  blobBytes(): number {
    return this.ofKind('blob', 'GET').reduce((sum, r) => sum + r.bytes, 0);
  }

  /** One line per request, for assertion messages. */
  describe(): string {
    return this.requests.map((r) => `${r.method} ${r.path} -> ${r.status} (${r.bytes} B)`).join('\n');
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    const record = classify(req.method ?? 'GET', path, req.headers.accept);
    this.requests.push(record);
    const fault = this.fault;

    if (fault?.kind === 'reset') {
      finish(record);
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'unavailable') {
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable' }] });
      record.status = 503;
      record.bytes = req.method === 'HEAD' ? 0 : Buffer.byteLength(body);
      finish(record);
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const truncateAfter = fault?.kind === 'truncate-blobs' && record.kind === 'blob' && req.method === 'GET'
      ? fault.afterBytes
      : undefined;

    const upstream = httpRequest({
      host: this.target.hostname,
      port: this.target.port,
      method: req.method,
      path,
      headers: req.headers,
    }, (upstreamRes) => {
      record.status = upstreamRes.statusCode ?? 0;
      res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.statusMessage, upstreamRes.rawHeaders);
      upstreamRes.on('data', (chunk: Buffer) => {
        if (truncateAfter !== undefined && record.bytes + chunk.length > truncateAfter) {
          finish(record);
          upstreamRes.destroy();
          res.write(chunk.subarray(0, truncateAfter - record.bytes), () => res.destroy());
          record.bytes = truncateAfter;
          return;
        }
        record.bytes += chunk.length;
        // Backpressure: pause the upstream while the client's buffer is full.
        if (!res.write(chunk)) {
          upstreamRes.pause();
          res.once('drain', () => upstreamRes.resume());
        }
      });
      upstreamRes.on('end', () => {
        finish(record);
        res.end();
      });
      upstreamRes.on('error', () => {
        finish(record);
        res.destroy();
      });
    });
    upstream.on('error', () => {
      finish(record);
      if (res.headersSent) res.destroy();
      else {
        record.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('upstream unreachable');
      }
    });
    res.on('close', () => {
      if (!record.done) {
        finish(record);
        upstream.destroy();
      }
    });
    req.pipe(upstream);
  }
}

function finish(record: RecordedRequest): void {
  record.done = true;
  record.endedAt = performance.now();
}

function classify(method: string, path: string, accept: string | undefined): RecordedRequest {
  const match = ROUTE.exec(path.split('?')[0]!);
  const base = { method, path, status: 0, bytes: 0, done: false, startedAt: performance.now(), endedAt: 0, ...(accept === undefined ? {} : { accept }) };
  if (match === null) return { ...base, kind: 'other' };
  return {
    ...base,
    kind: match[2] === 'manifests' ? 'manifest' : 'blob',
    repository: match[1]!,
    reference: decodeURIComponent(match[3]!),
  };
}
