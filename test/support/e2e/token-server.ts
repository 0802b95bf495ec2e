// A Docker registry token server (https://distribution.github.io/distribution/spec/auth/token/)
// for distribution 2.8's `auth.token`. Tokens are RS256 JWTs whose header carries the signing
// certificate in `x5c`; the registry trusts them because that certificate is its rootcertbundle.
// Note: distribution accepts a token up to 60 s past its `exp` (token.Leeway), so a short
// lifetime here does not make the registry reject a token any sooner than that.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signRs256 } from './jwt.js';
import { createSigningCert, type SigningCert } from './signing-cert.js';

export interface TokenUser {
  password: string;
  /** Actions granted on every repository, e.g. ['pull'] or ['pull', 'push', 'delete']; '*' grants all. */
  actions: readonly string[];
  /**
   * Repository-name prefixes the actions apply to, e.g. ['library/'] or ['private/', 'library/']; a
   * token for any other repository grants nothing (200 with empty actions, as Docker Hub answers; the
   * registry then refuses the token with 401). Default: every repository.
   */
  repositories?: readonly string[];
}

export interface TokenServerOptions {
  users: Record<string, TokenUser>;
  /** Grant `pull` on every repository to requests without credentials. Default false. */
  anonymousPull?: boolean;
  /** With anonymousPull: the repository-name prefixes it applies to (see TokenUser.repositories). Default: every repository. */
  anonymousRepositories?: readonly string[];
  /** Seconds a token is valid. Default 300. */
  tokenLifetimeSeconds?: number;
  service?: string;
  issuer?: string;
}

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequestRecord {
  method: string;
  /** The authenticated user, or null for an anonymous request. */
  account: string | null;
  /** Raw `scope` values as requested. */
  scopes: string[];
  status: number;
  granted: Access[];
}

export class TokenServer {
  readonly service: string;
  readonly issuer: string;
  readonly certPath: string;
  /** Every token request in arrival order. */
  readonly requests: TokenRequestRecord[] = [];
  tokenLifetimeSeconds: number;
  anonymousPull: boolean;
  anonymousRepositories: readonly string[] | undefined;
  private readonly users: Record<string, TokenUser>;
  private readonly cert: SigningCert;
  private readonly dir: string;
  private readonly server: Server;

  private constructor(options: TokenServerOptions, dir: string, cert: SigningCert) {
    this.service = options.service ?? 'longshore-e2e-upstream';
    this.issuer = options.issuer ?? 'longshore-e2e-token-issuer';
    this.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 300;
    this.anonymousPull = options.anonymousPull ?? false;
    this.anonymousRepositories = options.anonymousRepositories;
    this.users = options.users;
    this.dir = dir;
    this.cert = cert;
    this.certPath = cert.certPath;
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  }

  static async start(options: TokenServerOptions): Promise<TokenServer> {
    const dir = mkdtempSync(join(tmpdir(), 'longshore-token-'));
    const server = new TokenServer(options, dir, createSigningCert(dir, 'longshore-e2e-token-signer'));
    await new Promise<void>((resolve) => server.server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  /** The `realm` URL a registry sends in its WWW-Authenticate challenge. */
  get realm(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/token`;
  }

  get requestCount(): number {
    return this.requests.length;
  }

  reset(): void {
    this.requests.length = 0;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    if (url.pathname !== '/token' || (req.method !== 'GET' && req.method !== 'POST')) {
      return this.reply(res, 404, { details: 'not found' });
    }
    // GET carries Basic credentials (the token spec); POST is the OAuth2 form docker uses with a
    // password or refresh token grant.
    let params = url.searchParams;
    let scopes = params.getAll('scope');
    let credentials = basicCredentials(req.headers.authorization);
    if (req.method === 'POST') {
      params = new URLSearchParams(await readBody(req));
      scopes = (params.get('scope') ?? '').split(' ').filter((s) => s !== '');
      if (params.get('grant_type') !== 'password') {
        return this.record(res, req.method, null, scopes, 400, [], { error: 'unsupported_grant_type' });
      }
      credentials = { username: params.get('username') ?? '', password: params.get('password') ?? '' };
    }
    const service = params.get('service');
    if (service !== null && service !== this.service) {
      return this.record(res, req.method, null, scopes, 400, [], { details: `unknown service ${service}` });
    }

    let account: string | null = null;
    if (credentials !== undefined) {
      const user = this.users[credentials.username];
      if (user === undefined || user.password !== credentials.password) {
        return this.record(res, req.method, credentials.username, scopes, 401, [], { details: 'incorrect username or password' });
      }
      account = credentials.username;
    }

    const granted = scopes.map(parseScope).filter((a): a is Access => a !== undefined).map((a) => this.grant(account, a));
    const issuedAt = Math.floor(Date.now() / 1000);
    const token = signRs256(
      { typ: 'JWT', x5c: [this.cert.certDerBase64] },
      {
        iss: this.issuer,
        sub: account ?? '',
        aud: this.service,
        exp: issuedAt + this.tokenLifetimeSeconds,
        nbf: issuedAt - 1,
        iat: issuedAt,
        jti: randomUUID(),
        access: granted,
      },
      this.cert.privateKey,
    );
    return this.record(res, req.method, account, scopes, 200, granted, {
      token,
      access_token: token,
      expires_in: this.tokenLifetimeSeconds,
      issued_at: new Date(issuedAt * 1000).toISOString(),
    });
  }

  private grant(account: string | null, requested: Access): Access {
    const user = account === null ? undefined : this.users[account];
    const repositories = account === null ? this.anonymousRepositories : user?.repositories;
    if (requested.type === 'repository' && repositories !== undefined && !repositories.some((prefix) => requested.name.startsWith(prefix))) {
      return { ...requested, actions: [] };
    }
    const allowed = account === null ? (this.anonymousPull ? ['pull'] : []) : user?.actions ?? [];
    const all = allowed.includes('*');
    const actions = requested.type === 'repository' || all
      ? requested.actions.filter((action) => all || allowed.includes(action))
      : [];
    return { ...requested, actions };
  }

  private record(
    res: ServerResponse, method: string, account: string | null, scopes: string[], status: number,
    granted: Access[], body: unknown,
  ): void {
    this.requests.push({ method, account, scopes, status, granted });
    this.reply(res, status, body);
  }

  private reply(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}

/** `repository:library/alpine:pull,push` → type, name, actions. The name may itself hold colons. */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  };
}

function basicCredentials(header: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
