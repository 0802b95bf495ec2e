// Client authentication and authorization, as one service for the token endpoint and the /v2/
// middleware: who a request is (a verified token, or anonymous), what a token may grant (the
// intersection of the requested and the allowed actions), and the challenge that sends a client to
// the token endpoint. Built only when `auth.enabled`; nothing of it runs otherwise.
import type { AuthConfig } from '../config/schema.js';
import { LongshoreError } from '../errors.js';
import { LoginLimiter } from './login-limiter.js';
import { PasswordPool, type PasswordChecker } from './password-pool.js';
import { AccessRules, type Action, type Subject } from './rules.js';
import { bearerChallenge, type RequestedScope } from './scope.js';
import { loadSigningKey } from './signing-key.js';
import { TokenIssuer, TokenVerifier, type AccessEntry, type IssuedToken, type VerifiedToken } from './tokens.js';
import { UserStore } from './users.js';

/**
 * The routed name of a repository as a request names it: path name and containerd's `ns`, e.g.
 * ("library/alpine", undefined) → "docker.io/library/alpine". `write`: for a push or delete, which may
 * create a local repository under a name that reads still route upstream ("app" → "app", not
 * "docker.io/library/app"). Throws for names the router refuses.
 */
export type RepositoryResolver = (name: string, ns: string | undefined, write: boolean) => string;

const ALL_ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

/** What tests replace: the password checker (instead of a pool of threads) and the limiter's clock. */
export interface ClientAuthOverrides {
  checker?: PasswordChecker;
  now?: () => number;
}

export class ClientAuth {
  constructor(
    private readonly users: UserStore,
    readonly rules: AccessRules,
    private readonly issuer: TokenIssuer,
    private readonly verifier: TokenVerifier,
    readonly resolve: RepositoryResolver,
    private readonly settings: Pick<AuthConfig, 'realm' | 'service'>,
    private readonly failures: LoginLimiter,
    private readonly passwords?: PasswordPool,
  ) {}

  static async create(config: AuthConfig, generatedKeyPath: string, resolve: RepositoryResolver, overrides: ClientAuthOverrides = {}): Promise<ClientAuth> {
    const key = await loadSigningKey(config.signingKeyFile, generatedKeyPath);
    const settings = { issuer: config.issuer, service: config.service, ttl: config.tokenTTL };
    const pool = overrides.checker ? undefined : new PasswordPool({ threads: config.loginThreads, maxWaiting: config.loginQueue });
    return new ClientAuth(
      UserStore.fromConfig(config.users, config.htpasswd, overrides.checker ?? pool),
      new AccessRules(config.rules),
      new TokenIssuer(key, settings),
      new TokenVerifier(key, settings),
      resolve,
      config,
      new LoginLimiter({ maxFailures: config.loginFailures, windowMs: config.loginWindow, ...(overrides.now ? { now: overrides.now } : {}) }),
      pool,
    );
  }

  get service(): string {
    return this.settings.service;
  }

  /**
   * Whether the password is right. With `client` (the caller's address) failures are counted, and a
   * client over `auth.loginFailures` is refused with LS_TOO_MANY_LOGINS before any password is checked.
   * LS_LOGIN_QUEUE_FULL when every password thread is busy and the queue is full; neither counts as a failure.
   */
  async login(username: string, password: string, client?: string): Promise<boolean> {
    if (client !== undefined) {
      const wait = this.failures.blockedFor(client);
      if (wait > 0) {
        throw new LongshoreError('LS_TOO_MANY_LOGINS', 'too many failed logins from this address; try again later', { retryAfter: String(Math.ceil(wait / 1000)) });
      }
    }
    const attempt = client === undefined ? undefined : { client, at: this.failures.attempt(client) };
    let matches: boolean;
    try {
      matches = await this.users.verify(username, password);
    } catch (err) {
      // A check that could not run (queue full) is no failure of the client's.
      if (attempt) this.failures.withdraw(attempt.client, attempt.at);
      throw err;
    }
    if (matches && attempt) this.failures.withdraw(attempt.client, attempt.at);
    return matches;
  }

  /** Terminates the password threads. */
  async close(): Promise<void> {
    await this.passwords?.close();
  }

  verify(token: string): Promise<VerifiedToken> {
    return this.verifier.verify(token);
  }

  /**
   * A token for `subject` granting, per requested repository scope, the requested actions the rules
   * allow ("*" asks for all of them). Scopes naming no repository this mirror routes are granted nothing.
   * A scope asking for more than pull names up to two repositories: where reads of the name go now, and
   * the local repository a push would create under it ("app": "docker.io/library/app" and "app"); the
   * second is granted only when it differs and the rules allow something there.
   */
  async issue(subject: Subject, scopes: readonly RequestedScope[], ns: string | undefined): Promise<IssuedToken> {
    const access: AccessEntry[] = [];
    for (const scope of scopes) {
      if (scope.type !== 'repository') continue;
      const wanted = scope.actions.includes('*') ? ALL_ACTIONS : scope.actions;
      let names: string[];
      try {
        const read = this.resolve(scope.name, ns, false);
        const written = wanted.some((a) => a !== 'pull') ? this.resolve(scope.name, ns, true) : read;
        names = written === read ? [read] : [read, written];
      } catch {
        continue;
      }
      names.forEach((name, i) => {
        const allowed = this.rules.allowed(subject, name);
        const actions = ALL_ACTIONS.filter((a) => wanted.includes(a) && allowed.has(a));
        if (i === 0 || actions.length > 0) access.push({ type: 'repository', name, actions });
      });
    }
    return this.issuer.issue(subject, access);
  }

  /**
   * The WWW-Authenticate value for a request to `origin` (the mirror as the client reached it, used
   * unless `auth.realm` is set). containerd's `ns` travels in the realm's query, so that the token
   * endpoint routes the scope's name exactly as the request was routed.
   */
  challenge(origin: string, ns: string | undefined, scope?: string, error?: 'invalid_token' | 'insufficient_scope'): string {
    const realm = `${this.settings.realm ?? origin}/token${ns === undefined ? '' : `?ns=${encodeURIComponent(ns)}`}`;
    return bearerChallenge({ realm, service: this.settings.service, ...(scope === undefined ? {} : { scope }), ...(error === undefined ? {} : { error }) });
  }
}
