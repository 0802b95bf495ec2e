// Client tokens in the format of distribution's token spec (docs/spec/auth/jwt.md): a JWT with iss, sub
// (the user, "" when anonymous), aud (the service), exp/nbf/iat, jti and
// access: [{type: "repository", name, actions}]. Names in `access` are routed names
// ("docker.io/library/alpine"), the same ones the rules and the request check use.
// Verified tokens are remembered until they expire, so a pull's hundred requests verify one signature.
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import { LongshoreError } from '../errors.js';
import type { Action, Subject } from './rules.js';
import type { SigningKey } from './signing-key.js';

/** Verified tokens kept in memory; each entry is a few hundred bytes. */
const VERIFIED_CACHE_ENTRIES = 10_000;

export interface AccessEntry {
  type: 'repository';
  name: string;
  actions: Action[];
}

export interface IssuedToken {
  token: string;
  /** Seconds. */
  expiresIn: number;
  issuedAt: Date;
}

export interface VerifiedToken {
  subject: Subject;
  /** Routed repository name → actions granted. */
  grants: ReadonlyMap<string, ReadonlySet<Action>>;
  /** Epoch milliseconds. */
  expiresAt: number;
}

/** A bearer token that is expired, forged or malformed: the client is challenged again (401). */
export class TokenInvalidError extends LongshoreError {
  override readonly name = 'TokenInvalidError';
  constructor(message: string) {
    super('LS_UNAUTHORIZED', message);
  }
}

export interface TokenSettings {
  issuer: string;
  /** The `service`, used as the audience. */
  service: string;
  /** Milliseconds. */
  ttl: number;
}

export class TokenIssuer {
  constructor(
    private readonly key: SigningKey,
    private readonly settings: TokenSettings,
    private readonly now: () => number = Date.now,
  ) {}

  async issue(subject: Subject, access: readonly AccessEntry[]): Promise<IssuedToken> {
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresIn = Math.ceil(this.settings.ttl / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.key.alg, kid: this.key.kid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setSubject(subject ?? '')
      .setAudience(this.settings.service)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + expiresIn)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
    return { token, expiresIn, issuedAt: new Date(issuedAt * 1000) };
  }
}

export class TokenVerifier {
  private readonly verified = new LRUCache<string, VerifiedToken>({ max: VERIFIED_CACHE_ENTRIES });

  constructor(
    private readonly key: SigningKey,
    private readonly settings: Pick<TokenSettings, 'issuer' | 'service'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws TokenInvalidError for a token that is malformed, forged, for another service, or expired. */
  async verify(token: string): Promise<VerifiedToken> {
    const cached = this.verified.get(token);
    if (cached) {
      if (cached.expiresAt > this.now()) return cached;
      this.verified.delete(token);
      throw new TokenInvalidError('token expired');
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key.publicKey, {
        issuer: this.settings.issuer,
        audience: this.settings.service,
        algorithms: [this.key.alg],
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(this.now()),
      }));
    } catch (err) {
      throw new TokenInvalidError((err as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'token expired' : 'token invalid');
    }
    const entry: VerifiedToken = {
      subject: payload.sub ? payload.sub : null,
      grants: grantsOf(payload.access),
      expiresAt: payload.exp! * 1000,
    };
    this.verified.set(token, entry);
    return entry;
  }
}

function grantsOf(access: unknown): Map<string, Set<Action>> {
  const grants = new Map<string, Set<Action>>();
  if (!Array.isArray(access)) return grants;
  for (const entry of access as Array<Partial<AccessEntry>>) {
    if (entry?.type !== 'repository' || typeof entry.name !== 'string' || !Array.isArray(entry.actions)) continue;
    const actions = grants.get(entry.name) ?? new Set<Action>();
    for (const action of entry.actions) actions.add(action);
    grants.set(entry.name, actions);
  }
  return grants;
}
