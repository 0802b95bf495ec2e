// Authorization of every /v2/ request when `auth.enabled`, before the registry is asked anything — a
// cached manifest or blob is no exception. Registered only when auth is on; otherwise no request pays
// for it. Decisions, for each action the request needs on its routed repository:
//   the token grants it, or the rules allow it to anyone (anonymous)      → on to the registry
//   no valid token, or an anonymous one                                     → 401 with a challenge
//   a user's token lacks the scope, but the rules allow it to that user     → 401 insufficient_scope
//   the rules do not allow it to that user                                  → 403 DENIED
// GET /v2/ (and any other path that names no repository) needs a valid token, as in distribution;
// /v2/_catalog lists every local repository, so it needs a user whom a rule allows to pull "*".
import type { NextFunction, Request, Response } from 'express';
import type { ClientAuth } from '../../auth/client-auth.js';
import type { Action } from '../../auth/rules.js';
import { TokenInvalidError, type VerifiedToken } from '../../auth/tokens.js';
import { LongshoreError } from '../../errors.js';
import { bearerToken } from '../authorization.js';
import type { RequestLocals } from './request-context.js';
import { nameOf, nsOf, targetOfUrl, type RegistryTarget } from '../registry-target.js';

const HOST_HEADER = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

interface Requirement {
  /** The name as the client wrote it (for the challenge's scope). */
  name: string;
  /** The routed name the rules and tokens speak of. */
  repository: string;
  actions: Action[];
}

export function authenticate(auth: ClientAuth) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    const ns = nsOf(req.url);
    // The router reads the same parsed target: what is checked here is what is served.
    const target = targetOfUrl(req.url);
    (res.locals as RequestLocals).target = target;
    // Routing errors (unknown host, bad name) surface here, before any credential is looked at.
    const requirements = requirementsOf(req, target, auth, ns);
    const challenge = (scope?: string, error?: 'invalid_token' | 'insufficient_scope') => {
      res.setHeader('www-authenticate', auth.challenge(originOf(req), ns, scope, error));
      return new LongshoreError('LS_UNAUTHORIZED', 'authentication required', scope === undefined ? undefined : { scope });
    };
    const scopeOf = (r: Requirement) => `repository:${r.name}:${r.actions.join(',')}`;

    let token: VerifiedToken | undefined;
    const bearer = bearerToken(req.headers.authorization);
    if (bearer) {
      try {
        token = await auth.verify(bearer);
      } catch (err) {
        if (!(err instanceof TokenInvalidError)) throw err;
        throw challenge(requirements[0] && scopeOf(requirements[0]), 'invalid_token');
      }
    }
    if (token?.subject) (res.locals as RequestLocals).subject = token.subject;
    if (target.endpoint === 'catalog') {
      if (!token || token.subject === null) throw challenge('registry:catalog:*');
      if (!auth.rules.permitsEverywhere(token.subject, 'pull')) throw new LongshoreError('LS_DENIED', 'listing the catalog is denied');
      return next();
    }
    if (requirements.length === 0) {
      if (!token) throw challenge();
      return next();
    }
    for (const requirement of requirements) {
      for (const action of requirement.actions) {
        if (token?.grants.get(requirement.repository)?.has(action)) continue;
        if (auth.rules.permits(null, requirement.repository, action)) continue;
        if (!token || token.subject === null) throw challenge(scopeOf(requirement), token ? 'insufficient_scope' : undefined);
        if (auth.rules.permits(token.subject, requirement.repository, action)) throw challenge(scopeOf(requirement), 'insufficient_scope');
        throw new LongshoreError('LS_DENIED', `requested access to ${requirement.repository} is denied`, { repository: requirement.repository, action });
      }
    }
    next();
  };
}

/** What the request needs, per repository: pull to read; pull and push to write (as distribution asks); delete to delete. */
function requirementsOf(req: Request, target: RegistryTarget, auth: ClientAuth, ns: string | undefined): Requirement[] {
  const name = nameOf(target);
  if (name === undefined) return [];
  // The router ignores `ns` on uploads (local repositories only); so does the check.
  if (target.endpoint === 'upload-start' || target.endpoint === 'upload') ns = undefined;
  const actions: Action[] = req.method === 'GET' || req.method === 'HEAD' ? ['pull'] : req.method === 'DELETE' ? ['delete'] : ['pull', 'push'];
  const write = req.method !== 'GET' && req.method !== 'HEAD';
  const requirements: Requirement[] = [{ name, repository: auth.resolve(name, ns, write), actions }];
  // A cross-repository mount reads the source repository.
  const from = req.query.from;
  if (req.method === 'POST' && typeof from === 'string' && typeof req.query.mount === 'string') {
    requirements.push({ name: from, repository: auth.resolve(from, ns, false), actions: ['pull'] });
  }
  return requirements;
}

/** The mirror's origin as this client reached it, for the default realm. */
function originOf(req: Request): string {
  const host = req.headers.host;
  const local = req.socket.localAddress ?? '127.0.0.1';
  const authority = host !== undefined && HOST_HEADER.test(host) ? host : `${local.includes(':') ? `[${local}]` : local}:${req.socket.localPort}`;
  return `${req.protocol}://${authority}`;
}
