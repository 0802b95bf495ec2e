// The token endpoint clients are sent to by the /v2/ challenge (distribution docs/spec/auth/token.md):
//   GET  /token?service=…&scope=…[&scope=…]   credentials, if any, as Basic auth (docker, skopeo, podman)
//   POST /token  grant_type=password&username=…&password=…&service=…&scope=…   (OAuth2 form; containerd
//        tries it first and falls back to GET on 400/401/404/405)
// Without credentials the token is anonymous and grants what the anonymous rules allow. Refresh tokens
// are not issued, so docker login keeps the password in its credential store, as for Docker Hub.
import express, { type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { ClientAuth } from '../../auth/client-auth.js';
import type { Subject } from '../../auth/rules.js';
import { parseScopes } from '../../auth/scope.js';
import { LongshoreError } from '../../errors.js';
import type { RequestLocals } from '../middleware/request-context.js';
import { basicCredentials } from '../authorization.js';

/** Scopes honoured per token request; docker and containerd ask for one or two. */
const MAX_SCOPES = 32;

interface TokenRequest {
  credentials: { username: string; password: string } | undefined;
  service: string | undefined;
  scopes: string[];
}

export function tokenRouter(auth: ClientAuth, log: Logger): express.Router {
  const router = express.Router();
  const handle = (read: (req: Request) => TokenRequest) => async (req: Request, res: Response) => {
    (res.locals as RequestLocals).route = 'token';
    const request = read(req);
    if (request.service !== undefined && request.service !== auth.service) {
      throw new LongshoreError('LS_TOKEN_REQUEST_INVALID', `unknown service ${JSON.stringify(request.service.slice(0, 100))}`);
    }
    let subject: Subject = null;
    if (request.credentials) {
      const { username, password } = request.credentials;
      if (!(await auth.login(username, password))) {
        log.info({ user: username.slice(0, 128), requestId: (res.locals as RequestLocals).requestId }, 'login refused');
        throw new LongshoreError('LS_UNAUTHORIZED', 'incorrect username or password');
      }
      subject = username;
    }
    const ns = typeof req.query.ns === 'string' ? req.query.ns : undefined;
    const issued = await auth.issue(subject, parseScopes(request.scopes).slice(0, MAX_SCOPES), ns);
    res.setHeader('cache-control', 'no-store');
    res.json({
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt.toISOString(),
    });
  };

  router.get('/', handle((req) => ({
    credentials: basicCredentials(req.headers.authorization),
    service: stringParam(req.query.service),
    scopes: listParam(req.query.scope),
  })));
  router.post('/', express.urlencoded({ extended: false, limit: '16kb' }), handle((req) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (body.grant_type !== 'password') {
      throw new LongshoreError('LS_TOKEN_REQUEST_INVALID', 'only grant_type=password is supported');
    }
    return {
      credentials: { username: stringParam(body.username) ?? '', password: stringParam(body.password) ?? '' },
      service: stringParam(body.service),
      scopes: listParam(body.scope),
    };
  }));
  return router;
}

function stringParam(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function listParam(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
