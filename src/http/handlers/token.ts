// The token endpoint clients are sent to by the /v2/ challenge (distribution docs/spec/auth/token.md):
//   GET  /token?service=…&scope=…[&scope=…]   credentials, if any, as Basic auth (docker, skopeo, podman)
//   POST /token  grant_type=password&username=…&password=…&service=…&scope=…   (OAuth2 form; containerd
//        tries it first and falls back to GET on 400/401/404/405)
// Without credentials the token is anonymous and grants what the anonymous rules allow. Refresh tokens
// are not issued, so docker login keeps the password in its credential store, as for Docker Hub.
// Errors are answered in the OCI format that docker reads and, in the same body, with the OAuth2 fields
// `error` and `error_description` that OAuth2 clients read (RFC 6749 §5.2). A malformed request is a 400,
// whatever is wrong with it: containerd falls back to GET on a 400, not on a 413 or 415.
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { ClientAuth } from '../../auth/client-auth.js';
import type { Subject } from '../../auth/rules.js';
import { parseScopes } from '../../auth/scope.js';
import { LongshoreError, type ErrorCode } from '../../errors.js';
import { clientAddress } from '../client-address.js';
import type { RequestLocals } from '../middleware/request-context.js';
import { basicCredentials } from '../authorization.js';
import { nsOf } from '../registry-target.js';
import { toOciError } from '../oci-errors.js';

/** Scopes honoured per token request; docker and containerd ask for one or two. */
const MAX_SCOPES = 32;
const FORM_TYPE = 'application/x-www-form-urlencoded';
const MAX_FORM_BYTES = 16 * 1024;

type OAuthError = 'invalid_request' | 'unsupported_grant_type' | 'invalid_grant' | 'temporarily_unavailable';

/** The OAuth2 `error` of a /token failure; `unsupported_grant_type` is set where it is raised. */
const OAUTH_ERRORS: Partial<Record<ErrorCode, OAuthError>> = {
  LS_TOKEN_REQUEST_INVALID: 'invalid_request',
  LS_UNAUTHORIZED: 'invalid_grant',
  LS_TOO_MANY_LOGINS: 'temporarily_unavailable',
  LS_LOGIN_QUEUE_FULL: 'temporarily_unavailable',
};

/** What the body parser's (body-parser, http-errors) error types mean, told to the client. */
const BODY_ERRORS: Record<string, string> = {
  'charset.unsupported': 'unsupported charset; send the form in UTF-8',
  'encoding.unsupported': 'unsupported Content-Encoding',
  'entity.too.large': `request body over ${MAX_FORM_BYTES} bytes`,
  'entity.parse.failed': 'malformed form body',
  'parameters.too.many': 'too many form parameters',
  'request.aborted': 'request body incomplete',
  'request.size.invalid': 'request body length differs from its Content-Length',
  'body.unreadable': 'request body unreadable (Content-Encoding?)',
};

const invalid = (description: string, oauth: OAuthError = 'invalid_request') =>
  Object.assign(new LongshoreError('LS_TOKEN_REQUEST_INVALID', description), { oauth });

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
      if (!(await auth.login(username, password, clientAddress(req, res)))) {
        log.info({ user: username.slice(0, 128), requestId: (res.locals as RequestLocals).requestId }, 'login refused');
        throw new LongshoreError('LS_UNAUTHORIZED', 'incorrect username or password');
      }
      subject = username;
    }
    const ns = nsOf(req.url);
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
  router.post('/', (req, _res, next) => {
    next(req.is(FORM_TYPE) ? undefined : invalid(`expected Content-Type ${FORM_TYPE}`));
  }, express.urlencoded({ extended: false, limit: MAX_FORM_BYTES }), handle((req) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const grant = stringParam(body.grant_type);
    if (grant === undefined) throw invalid('grant_type is required');
    if (grant !== 'password') throw invalid('only grant_type=password is supported', 'unsupported_grant_type');
    const username = stringParam(body.username);
    const password = stringParam(body.password);
    if (!username || password === undefined) throw invalid('grant_type=password needs username and password');
    return {
      credentials: { username, password },
      service: stringParam(body.service),
      scopes: listParam(body.scope),
    };
  }));
  router.use(tokenError(log));
  return router;
}

/**
 * Answers /token failures; a request the body parser refused is a client error (400), never a 500 with
 * a stack trace in the log. Anything else goes on to the general error handler.
 */
function tokenError(log: Logger) {
  return (err: unknown, _req: Request, res: Response, next: NextFunction): void => {
    const refused = bodyParserError(err);
    if (refused) {
      log.debug({ requestId: (res.locals as RequestLocals).requestId, reason: refused }, 'token request refused');
      err = invalid(BODY_ERRORS[refused] ?? 'malformed request');
    }
    const oci = toOciError(err);
    // Bugs and server failures are logged by the general handler.
    if (!(err instanceof LongshoreError) || oci.status >= 500 || res.headersSent) return next(err);
    (res.locals as RequestLocals).route = 'token';
    const oauth = (err as LongshoreError & { oauth?: OAuthError }).oauth ?? OAUTH_ERRORS[err.code] ?? 'invalid_request';
    res.status(oci.status);
    for (const [name, value] of Object.entries(oci.headers)) res.setHeader(name, value);
    res.setHeader('cache-control', 'no-store');
    res.json({ ...oci.body, error: oauth, error_description: err.message });
  };
}

/**
 * The `type` of an error the body parser raised for a client's request (an http-errors 4xx), e.g.
 * "charset.unsupported"; "body.unreadable" for one without a type, such as a corrupt gzip body.
 */
function bodyParserError(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { type, status, expose } = err as { type?: unknown; status?: unknown; expose?: unknown };
  if (typeof status !== 'number' || status < 400 || status >= 500 || expose !== true) return undefined;
  return typeof type === 'string' ? type : 'body.unreadable';
}


function stringParam(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function listParam(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
