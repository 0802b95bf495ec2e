// The one place internal error codes become HTTP statuses and OCI error bodies
// ({"errors":[{"code","message","detail"}]}, distribution-spec "Error Codes").
import type { ErrorCode } from '../errors.js';
import { LongshoreError } from '../errors.js';

interface WireError {
  status: number;
  code: string;
}

export const WIRE_ERRORS: Record<ErrorCode, WireError> = {
  LS_NAME_INVALID: { status: 400, code: 'NAME_INVALID' },
  LS_TAG_INVALID: { status: 400, code: 'TAG_INVALID' },
  LS_DIGEST_INVALID: { status: 400, code: 'DIGEST_INVALID' },
  LS_DIGEST_UNSUPPORTED: { status: 400, code: 'UNSUPPORTED' },
  LS_RANGE_INVALID: { status: 416, code: 'RANGE_INVALID' },
  LS_PAGINATION_INVALID: { status: 400, code: 'PAGINATION_NUMBER_INVALID' },
  // Admin API (/api/v1/) only, which is not part of the distribution spec.
  LS_QUERY_INVALID: { status: 400, code: 'QUERY_INVALID' },
  // 404, so that a containerd or podman mirror entry falls back to the registry itself.
  LS_UPSTREAM_UNKNOWN: { status: 404, code: 'NAME_UNKNOWN' },
  LS_MANIFEST_NOT_FOUND: { status: 404, code: 'MANIFEST_UNKNOWN' },
  LS_BLOB_NOT_FOUND: { status: 404, code: 'BLOB_UNKNOWN' },
  LS_NAME_NOT_FOUND: { status: 404, code: 'NAME_UNKNOWN' },
  LS_UNSUPPORTED: { status: 405, code: 'UNSUPPORTED' },
  LS_UPLOAD_UNKNOWN: { status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  LS_UPLOAD_RANGE: { status: 416, code: 'BLOB_UPLOAD_INVALID' },
  LS_UPLOAD_INVALID: { status: 400, code: 'BLOB_UPLOAD_INVALID' },
  // Abuse limits on pushes (local.maxUploadsPer*, maxUploadSize, maxSize). dockerd retries a failed layer
  // push unless the code is UNAUTHORIZED, UNSUPPORTED, DENIED, TOOMANYREQUESTS or NAME_UNKNOWN (moby
  // distribution/errors.go, retryOnError): a refusal that a retry cannot change says DENIED.
  LS_TOO_MANY_UPLOADS: { status: 429, code: 'TOOMANYREQUESTS' },
  LS_UPLOAD_TOO_LARGE: { status: 413, code: 'DENIED' },
  LS_QUOTA_EXCEEDED: { status: 507, code: 'DENIED' },
  LS_MANIFEST_INVALID: { status: 400, code: 'MANIFEST_INVALID' },
  LS_MANIFEST_TOO_LARGE: { status: 413, code: 'MANIFEST_INVALID' },
  LS_MANIFEST_BLOB_UNKNOWN: { status: 400, code: 'MANIFEST_BLOB_UNKNOWN' },
  LS_ENDPOINT_NOT_FOUND: { status: 404, code: 'NOT_FOUND' },
  // Client authentication (auth.enabled). The middleware sets WWW-Authenticate before raising LS_UNAUTHORIZED.
  LS_UNAUTHORIZED: { status: 401, code: 'UNAUTHORIZED' },
  LS_DENIED: { status: 403, code: 'DENIED' },
  LS_TOKEN_REQUEST_INVALID: { status: 400, code: 'UNSUPPORTED' },
  // Logins are refused before any password is checked: per client after auth.loginFailures, or all
  // of them while the password threads' queue is full. Both carry Retry-After.
  LS_TOO_MANY_LOGINS: { status: 429, code: 'TOOMANYREQUESTS' },
  LS_LOGIN_QUEUE_FULL: { status: 429, code: 'TOOMANYREQUESTS' },
  LS_REQUEST_BODY_INVALID: { status: 400, code: 'UNSUPPORTED' },
  LS_UPSTREAM_DENIED: { status: 403, code: 'DENIED' },
  LS_UPSTREAM_RATE_LIMITED: { status: 429, code: 'TOOMANYREQUESTS' },
  LS_UPSTREAM_UNAVAILABLE: { status: 502, code: 'UNAVAILABLE' },
  LS_UPSTREAM_TIMEOUT: { status: 504, code: 'UNAVAILABLE' },
  LS_UPSTREAM_BAD_RESPONSE: { status: 502, code: 'UNAVAILABLE' },
  LS_UPSTREAM_HOST_REFUSED: { status: 502, code: 'UNAVAILABLE' },
  LS_CONTENT_MISMATCH: { status: 502, code: 'UNAVAILABLE' },
  // Admin commands and start-up only; never a registry request's answer.
  LS_DATA_DIR_LOCKED: { status: 409, code: 'UNAVAILABLE' },
  LS_CONFIG_INVALID: { status: 500, code: 'UNKNOWN' },
  LS_DATABASE_TOO_NEW: { status: 500, code: 'UNKNOWN' },
  // Admin jobs (/api/v1/jobs/) only: a bundle that is not a whole, verified OCI layout, or an
  // incremental bundle whose omitted content this mirror does not hold; a job request without the data
  // directory's admin token.
  LS_BUNDLE_INVALID: { status: 400, code: 'UNSUPPORTED' },
  LS_BUNDLE_CONTENT_MISSING: { status: 409, code: 'UNSUPPORTED' },
  LS_ADMIN_TOKEN_INVALID: { status: 401, code: 'UNAUTHORIZED' },
  LS_ADMIN_SERVER_UNTRUSTED: { status: 500, code: 'UNKNOWN' },
  LS_INTERNAL: { status: 500, code: 'UNKNOWN' },
};

export interface OciErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { errors: Array<{ code: string; message: string; detail?: unknown }> };
}

export function toOciError(err: unknown): OciErrorResponse {
  const known = err instanceof LongshoreError ? err : undefined;
  const wire = WIRE_ERRORS[known?.code ?? 'LS_INTERNAL'];
  const message = known ? known.message : 'internal error';
  const headers: Record<string, string> = {};
  const retryAfter = known?.detail?.retryAfter;
  if (typeof retryAfter === 'string' && /^\d+$/.test(retryAfter)) headers['retry-after'] = retryAfter;
  // A pass-through upstream's refusal asks the client for its credentials (registry/proxy.ts).
  if (known?.code === 'LS_UNAUTHORIZED' && known.detail?.challenge === 'basic') headers['www-authenticate'] = 'Basic realm="longshore", charset="UTF-8"';
  const detail = known?.detail && Object.keys(known.detail).length > 0 ? known.detail : undefined;
  return {
    status: wire.status,
    headers,
    body: { errors: [{ code: wire.code, message, ...(detail ? { detail } : {}) }] },
  };
}
