// The dashboard (/ui) and the admin API (/api/v1) show every cached repository, the recent pulls and the
// upstreams' state. With `auth.enabled` they are for users whom a rule allows to pull every repository,
// as /v2/_catalog is. A browser is asked for Basic credentials (WWW-Authenticate: Basic) and resends
// them with the dashboard's own requests; scripts may send those or a token from /token. The dashboard
// polls every few seconds and a bcrypt check is slow by design, so a successful Basic login is
// remembered for a minute, by a hash of the header.
import { createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { clientAddress } from '../client-address.js';
import { LRUCache } from 'lru-cache';
import type { ClientAuth } from '../../auth/client-auth.js';
import { TokenInvalidError } from '../../auth/tokens.js';
import { LongshoreError } from '../../errors.js';
import { basicCredentials, bearerToken } from '../authorization.js';

const REMEMBER_MS = 60_000;

export function requireAdmin(auth: ClientAuth) {
  const remembered = new LRUCache<string, string>({ max: 256, ttl: REMEMBER_MS });
  const who = async (header: string | undefined, client: string | undefined): Promise<string | null> => {
    const token = bearerToken(header);
    if (token) {
      try {
        return (await auth.verify(token)).subject;
      } catch (err) {
        if (err instanceof TokenInvalidError) return null;
        throw err;
      }
    }
    const credentials = basicCredentials(header);
    if (!credentials) return null;
    const key = createHash('sha256').update(header!).digest('base64');
    const known = remembered.get(key);
    if (known !== undefined) return known;
    if (!(await auth.login(credentials.username, credentials.password, client))) return null;
    remembered.set(key, credentials.username);
    return credentials.username;
  };
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const subject = await who(req.headers.authorization, clientAddress(req, res));
    if (subject === null) {
      res.setHeader('www-authenticate', 'Basic realm="Longshore", charset="UTF-8"');
      throw new LongshoreError('LS_UNAUTHORIZED', 'the dashboard and admin API need the credentials of a user allowed to pull every repository');
    }
    if (!auth.rules.permitsEverywhere(subject, 'pull')) {
      throw new LongshoreError('LS_DENIED', `the dashboard and admin API are not open to ${subject}: no rule allows them to pull every repository`);
    }
    next();
  };
}
