// An in-process upstream registry for unit and integration tests: a registry speaking the v2 pull API,
// a token server (Docker Hub's Bearer flow, or Basic), and a separate "CDN" host that blob GETs are
// redirected to and that refuses any request carrying Authorization — as Docker Hub's CDN would leak
// nothing useful but a mirror must not send it. Every request is recorded; faults can be switched on.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  host: 'registry' | 'token' | 'cdn';
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The status answered; 0 until the response was sent. */
  status: number;
}

export interface FakeRegistryOptions {
  /** How the registry challenges: Docker Hub-style Bearer tokens (default), Basic, or no auth. */
  auth?: 'bearer' | 'basic' | 'none';
  /** Accepted credentials; when absent, anonymous tokens are issued. */
  users?: Record<string, string>;
  /** Redirect blob GETs to the CDN host (default true). */
  cdn?: boolean;
  /** Token lifetime in seconds (default 300). */
  tokenLifetime?: number;
  /**
   * Serve a manifest or blob by digest only through a repository it was published to (`grant`), as
   * distribution does with its per-repository links. Default false: any digest through any name.
   */
  isolate?: boolean;
  /**
   * Who may pull what, as Docker Hub decides it: user name ("" for anonymous) → repository prefixes.
   * When set, anonymous token requests are answered too, and a token grants its scope only when the
   * user may pull the repository (otherwise the registry answers 401 with it).
   */
  acl?: Record<string, string[]>;
  /** Address the registry and CDN listen on (default 127.0.0.1); any 127/8 address works on Linux. */
  host?: string;
  /** Address the token server listens on (default: `host`), to put the realm on another host. */
  tokenHost?: string;
}

interface StoredManifest {
  mediaType: string;
  body: Buffer;
}

type BlobFault =
  | { kind: 'corrupt' }
  /** Cuts the connection after `after` bytes; only the first `times` responses (default: all). */
  | { kind: 'truncate'; after: number; times?: number }
  | { kind: 'hold'; after: number; release: Promise<void> }
  /** The whole blob, without Content-Length (chunked). */
  | { kind: 'unsized' }
  /**
   * 200 without Content-Length, then bytes until the connection closes; `sent` counts them. `upTo`
   * ends the body there instead, so that a test run against code without a cap fails instead of filling the disk.
   */
  | { kind: 'endless'; sent?: number; upTo?: number };

export class FakeRegistry {
  readonly requests: RecordedRequest[] = [];
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, StoredManifest>();
  /** "repo:tag" → digest */
  readonly tags = new Map<string, string>();
  readonly tokens = new Map<string, { scope: string; expires: number }>();
  /** Status forced on every registry request (not token/CDN) while set, e.g. 503 or 429. */
  forceStatus: number | undefined;
  /** When set, only this many more registry requests get `forceStatus`; then it clears itself. */
  forceCount: number | undefined;
  /** TCP connections accepted by any of the three hosts. */
  connections = 0;
  /** Accept connections and never answer (a blackholed upstream) while set. */
  blackhole = false;
  rateLimitRemaining = 100;
  /** Answer `Range: bytes=N-` on blobs with 206 (default); when false, ignore Range and send 200. */
  rangeSupport = true;
  /** Repository → digests it holds (see `isolate`). */
  readonly members = new Map<string, Set<string>>();
  /** Hostile answers: "repo:tag" → the digest a manifest HEAD claims, whatever the tag points to. */
  readonly headDigestOverride = new Map<string, string>();
  /** When set, blob GETs are redirected to this URL instead of the CDN (a hostile upstream). */
  blobRedirect: ((digest: string) => string) | undefined;
  /** When set, Bearer challenges name this realm instead of the token server's. */
  realm: string | undefined;
  /**
   * Serve the OCI 1.1 referrers API (GET /v2/<name>/referrers/<digest>) from the manifests a repository
   * holds that name a subject; off (404, as distribution 2.x answers) by default.
   */
  referrersApi = false;
  /** With referrersApi: apply ?artifactType= here (OCI-Filters-Applied) instead of leaving it to the client. */
  referrersFilter = false;
  /** With referrersApi: descriptors per page, with a Link to the next. */
  referrersPageSize = 1000;
  /** With referrersApi: repositories whose referrers are answered 404 NAME_UNKNOWN, as a registry with the API answers for a name it does not know. */
  readonly referrersNameUnknown = new Set<string>();
  private readonly blobFaults = new Map<string, BlobFault>();
  private readonly sockets = new Set<Socket>();
  private servers: Server[] = [];
  registryUrl = '';
  tokenUrl = '';
  cdnUrl = '';

  private constructor(private readonly options: Required<Omit<FakeRegistryOptions, 'acl'>> & Pick<FakeRegistryOptions, 'acl'>) {}

  static async start(options: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const host = options.host ?? '127.0.0.1';
    const fake = new FakeRegistry({ auth: 'bearer', users: {}, cdn: true, tokenLifetime: 300, host, tokenHost: host, isolate: false, ...options });
    fake.registryUrl = await fake.listen((req, res) => fake.registry(req, res), fake.options.host);
    fake.tokenUrl = await fake.listen((req, res) => fake.token(req, res), fake.options.tokenHost);
    fake.cdnUrl = await fake.listen((req, res) => fake.cdn(req, res), fake.options.host);
    return fake;
  }

  // ---- content ---------------------------------------------------------------------------------

  addBlob(content: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
    const digest = digestOf(content, algorithm);
    this.blobs.set(digest, content);
    return digest;
  }

  addManifest(repository: string, mediaType: string, document: object | Buffer, tag?: string, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
    const body = Buffer.isBuffer(document) ? document : Buffer.from(JSON.stringify(document));
    const digest = digestOf(body, algorithm);
    this.manifests.set(digest, { mediaType, body });
    this.grant(repository, digest);
    if (tag !== undefined) this.tags.set(`${repository}:${tag}`, digest);
    return digest;
  }

  /** Records that `repository` holds `digest` (only consulted with `isolate`). */
  grant(repository: string, digest: string): void {
    let set = this.members.get(repository);
    if (!set) this.members.set(repository, (set = new Set()));
    set.add(digest);
  }

  private holds(repository: string, digest: string): boolean {
    return !this.options.isolate || this.members.get(repository)?.has(digest) === true;
  }

  setBlobFault(digest: string, fault: BlobFault | undefined): void {
    if (fault) this.blobFaults.set(digest, fault);
    else this.blobFaults.delete(digest);
  }

  // ---- observation -----------------------------------------------------------------------------

  count(filter: Partial<Pick<RecordedRequest, 'host' | 'method' | 'status'>> & { path?: string | RegExp } = {}): number {
    return this.requests.filter((r) =>
      (filter.host === undefined || r.host === filter.host) &&
      (filter.method === undefined || r.method === filter.method) &&
      (filter.status === undefined || r.status === filter.status) &&
      (filter.path === undefined || (typeof filter.path === 'string' ? r.path === filter.path : filter.path.test(r.path)))).length;
  }

  reset(): void {
    this.requests.length = 0;
  }

  expireTokens(): void {
    for (const token of this.tokens.values()) token.expires = 0;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  // ---- servers ---------------------------------------------------------------------------------

  private async listen(handler: (req: IncomingMessage, res: ServerResponse) => void, host: string): Promise<string> {
    const server = createServer((req, res) => {
      if (this.blackhole) return; // never answers
      handler(req, res);
    });
    server.on('connection', (socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    this.servers.push(server);
    return `http://${host}:${(server.address() as AddressInfo).port}`;
  }

  private record(host: RecordedRequest['host'], req: IncomingMessage, res: ServerResponse): URL {
    const url = new URL(req.url ?? '/', 'http://fake');
    const entry: RecordedRequest = { host, method: req.method ?? 'GET', path: url.pathname, headers: req.headers, status: 0 };
    this.requests.push(entry);
    res.once('finish', () => (entry.status = res.statusCode));
    if (res.headersSent) entry.status = res.statusCode;
    const writeHead = res.writeHead.bind(res);
    res.writeHead = ((...args: Parameters<typeof res.writeHead>) => {
      entry.status = args[0];
      return writeHead(...args);
    }) as typeof res.writeHead;
    return url;
  }

  private token(req: IncomingMessage, res: ServerResponse): void {
    const url = this.record('token', req, res);
    if (this.options.acl) {
      const user = basicUser(req.headers.authorization);
      if (user && this.options.users[user.name] !== user.password) return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] });
      const scope = url.searchParams.get('scope') ?? '';
      const repository = /^repository:([^:]+):/.exec(scope)?.[1];
      const allowed = repository !== undefined && (this.options.acl[user?.name ?? ''] ?? []).some((prefix) => repository.startsWith(prefix));
      const token = randomBytes(16).toString('hex');
      this.tokens.set(token, { scope: allowed ? scope : '', expires: Date.now() + this.options.tokenLifetime * 1000 });
      return json(res, 200, { token, expires_in: this.options.tokenLifetime, issued_at: new Date().toISOString() });
    }
    if (Object.keys(this.options.users).length > 0) {
      const user = basicUser(req.headers.authorization);
      if (!user || this.options.users[user.name] !== user.password) return json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] });
    }
    const token = randomBytes(16).toString('hex');
    this.tokens.set(token, { scope: url.searchParams.get('scope') ?? '', expires: Date.now() + this.options.tokenLifetime * 1000 });
    json(res, 200, { token, expires_in: this.options.tokenLifetime, issued_at: new Date().toISOString() });
  }

  private authorized(req: IncomingMessage, repository: string): boolean {
    const header = req.headers.authorization ?? '';
    if (this.options.auth === 'none') return true;
    if (this.options.auth === 'basic') {
      const user = basicUser(header);
      return user !== undefined && this.options.users[user.name] === user.password;
    }
    const token = this.tokens.get(header.replace(/^Bearer /, ''));
    return token !== undefined && token.expires > Date.now() && token.scope === `repository:${repository}:pull`;
  }

  private challenge(res: ServerResponse, repository: string): void {
    const header = this.options.auth === 'basic'
      ? 'Basic realm="fake"'
      : `Bearer realm="${this.realm ?? `${this.tokenUrl}/token`}",service="fake-registry",scope="repository:${repository}:pull"`;
    res.setHeader('www-authenticate', header);
    json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] });
  }

  private registry(req: IncomingMessage, res: ServerResponse): void {
    const url = this.record('registry', req, res);
    if (this.forceStatus !== undefined) {
      if (this.forceCount !== undefined && --this.forceCount <= 0) {
        this.forceCount = undefined;
        const status = this.forceStatus;
        this.forceStatus = undefined;
        return json(res, status, { errors: [{ code: 'UNAVAILABLE', message: 'forced once' }] });
      }
      if (this.forceStatus === 429) res.setHeader('retry-after', '30');
      return json(res, this.forceStatus, { errors: [{ code: this.forceStatus === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'forced' }] });
    }
    if (url.pathname === '/v2/') return json(res, 200, {});
    const tagsMatch = /^\/v2\/(.+)\/tags\/list$/.exec(url.pathname);
    if (tagsMatch) {
      const repository = tagsMatch[1]!;
      if (!this.authorized(req, repository)) return this.challenge(res, repository);
      return this.tagList(res, repository, url.searchParams);
    }
    const referrersMatch = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(url.pathname);
    if (referrersMatch && this.referrersApi) {
      const repository = referrersMatch[1]!;
      if (!this.authorized(req, repository)) return this.challenge(res, repository);
      return this.referrers(res, repository, referrersMatch[2]!, url.searchParams);
    }
    const match = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!match) return json(res, 404, { errors: [{ code: 'NOT_FOUND' }] });
    const [, repository, kind, reference] = match as unknown as [string, string, string, string];
    if (!this.authorized(req, repository)) return this.challenge(res, repository);
    if (kind === 'manifests') return this.manifest(req, res, repository, reference);
    if (!this.holds(repository, reference)) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown to repository' }] });
    return this.blob(req, res, reference);
  }

  private tagList(res: ServerResponse, repository: string, params: URLSearchParams): void {
    const all = [...this.tags.keys()].filter((k) => k.startsWith(`${repository}:`)).map((k) => k.slice(repository.length + 1)).sort();
    if (all.length === 0) return json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    const last = params.get('last');
    const n = params.has('n') ? Number(params.get('n')) : undefined;
    const rest = last === null ? all : all.filter((t) => t > last);
    const page = n === undefined ? rest : rest.slice(0, n);
    if (n !== undefined && rest.length > n) res.setHeader('link', `</v2/${repository}/tags/list?n=${n}&last=${page.at(-1)}>; rel="next"`);
    json(res, 200, { name: repository, tags: page });
  }

  private referrers(res: ServerResponse, repository: string, subject: string, params: URLSearchParams): void {
    if (this.referrersNameUnknown.has(repository)) return json(res, 404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
    const artifactType = params.get('artifactType');
    const all = [...(this.members.get(repository) ?? this.manifests.keys())].flatMap((digest) => {
      const manifest = this.manifests.get(digest);
      if (!manifest) return [];
      const doc = JSON.parse(manifest.body.toString()) as { subject?: { digest?: string }; artifactType?: string; config?: { mediaType?: string }; annotations?: unknown };
      if (doc.subject?.digest !== subject) return [];
      const type = doc.artifactType ?? doc.config?.mediaType;
      return [{ mediaType: manifest.mediaType, digest, size: manifest.body.length, ...(type ? { artifactType: type } : {}), ...(doc.annotations ? { annotations: doc.annotations } : {}) }];
    }).sort((a, b) => (a.digest < b.digest ? -1 : 1));
    const filtered = artifactType !== null && this.referrersFilter ? all.filter((d) => d.artifactType === artifactType) : all;
    const start = Number(params.get('page') ?? 0);
    const page = filtered.slice(start, start + this.referrersPageSize);
    if (start + this.referrersPageSize < filtered.length) res.setHeader('link', `</v2/${repository}/referrers/${subject}?page=${start + this.referrersPageSize}>; rel="next"`);
    if (artifactType !== null && this.referrersFilter) res.setHeader('oci-filters-applied', 'artifactType');
    res.setHeader('content-type', 'application/vnd.oci.image.index.v1+json');
    json(res, 200, { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: page });
  }

  private manifest(req: IncomingMessage, res: ServerResponse, repository: string, reference: string): void {
    const claimed = req.method === 'HEAD' ? this.headDigestOverride.get(`${repository}:${reference}`) : undefined;
    if (claimed !== undefined) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': claimed, 'content-length': 512 });
      return void res.end();
    }
    const byDigest = /^sha(256|512):/.test(reference);
    const digest = byDigest ? reference : this.tags.get(`${repository}:${reference}`);
    const manifest = digest === undefined || !this.holds(repository, digest) ? undefined : this.manifests.get(digest);
    if (!digest || !manifest) return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
    // Like distribution without schema1: a tag whose type the client does not accept is not served.
    const accept = (req.headers.accept ?? '').split(',').map((t) => t.trim());
    if (!byDigest && req.headers.accept && !accept.includes(manifest.mediaType)) {
      return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'not in an accepted media type' }] });
    }
    res.setHeader('content-type', manifest.mediaType);
    res.setHeader('docker-content-digest', digest);
    res.setHeader('content-length', manifest.body.length);
    if (req.method === 'GET') {
      res.setHeader('ratelimit-limit', '100;w=21600');
      res.setHeader('ratelimit-remaining', `${--this.rateLimitRemaining};w=21600`);
    }
    res.statusCode = 200;
    res.end(req.method === 'HEAD' ? undefined : manifest.body);
  }

  private blob(req: IncomingMessage, res: ServerResponse, digest: string): void {
    const content = this.blobs.get(digest);
    if (!content) return json(res, 404, { errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] });
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-length': content.length, 'docker-content-digest': digest, 'content-type': 'application/octet-stream' });
      return void res.end();
    }
    if (this.blobRedirect) {
      res.writeHead(307, { location: this.blobRedirect(digest) });
      return void res.end();
    }
    if (this.options.cdn) {
      res.writeHead(307, { location: `${this.cdnUrl}/blobs/${digest}?signature=${randomBytes(4).toString('hex')}` });
      return void res.end();
    }
    this.sendBlob(req, res, digest, content);
  }

  private cdn(req: IncomingMessage, res: ServerResponse): void {
    const url = this.record('cdn', req, res);
    // The CDN serves pre-signed URLs; a request carrying the registry's credentials is refused.
    if (req.headers.authorization) return json(res, 400, { error: 'Authorization header not allowed on CDN requests' });
    const digest = url.pathname.replace(/^\/blobs\//, '');
    const content = this.blobs.get(digest);
    if (!content) return json(res, 404, { error: 'no such object' });
    this.sendBlob(req, res, digest, content);
  }

  private sendBlob(req: IncomingMessage, res: ServerResponse, digest: string, content: Buffer): void {
    const fault = this.blobFaults.get(digest);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && this.rangeSupport) {
      const start = Number(range[1]);
      res.writeHead(206, { 'content-length': content.length - start, 'content-range': `bytes ${start}-${content.length - 1}/${content.length}`, 'content-type': 'application/octet-stream' });
      return void res.end(content.subarray(start));
    }
    if (fault?.kind === 'unsized' || fault?.kind === 'endless') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      if (fault.kind === 'unsized') return void res.end(content);
      const chunk = Buffer.alloc(64 * 1024, 7);
      const more = () => {
        while (!res.destroyed) {
          if (fault.upTo !== undefined && (fault.sent ?? 0) >= fault.upTo) return void res.end();
          fault.sent = (fault.sent ?? 0) + chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
      };
      return more();
    }
    res.writeHead(200, { 'content-length': content.length, 'content-type': 'application/octet-stream' });
    if (!fault) return void res.end(content);
    if (fault.kind === 'corrupt') {
      const bad = Buffer.from(content);
      bad[bad.length - 1] = (bad[bad.length - 1]! + 1) % 256;
      return void res.end(bad);
    }
    if (fault.kind === 'truncate') {
      if (fault.times !== undefined && fault.times-- <= 0) return void res.end(content);
      res.write(content.subarray(0, fault.after));
      // Cut the connection mid-body: the client sees fewer bytes than Content-Length.
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    res.write(content.subarray(0, fault.after));
    void fault.release.then(() => res.end(content.subarray(fault.after)));
  }
}

export function sha256(data: Buffer | string): string {
  return digestOf(data, 'sha256');
}

export function digestOf(data: Buffer | string, algorithm: 'sha256' | 'sha512'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function basicUser(header: string | undefined): { name: string; password: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
