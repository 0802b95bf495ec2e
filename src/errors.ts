// Typed errors with stable codes. Internal code knows nothing of HTTP: the codes below are translated to
// OCI error bodies and statuses in one place, http/oci-errors.ts, and docs/errors.md documents each code
// (a unit test fails when one is missing there).

export const ERROR_CODES = [
  'LS_NAME_INVALID',
  'LS_TAG_INVALID',
  'LS_DIGEST_INVALID',
  'LS_DIGEST_UNSUPPORTED',
  'LS_RANGE_INVALID',
  'LS_PAGINATION_INVALID',
  'LS_QUERY_INVALID',
  'LS_UPSTREAM_UNKNOWN',
  'LS_MANIFEST_NOT_FOUND',
  'LS_BLOB_NOT_FOUND',
  'LS_NAME_NOT_FOUND',
  'LS_UNSUPPORTED',
  'LS_UPLOAD_UNKNOWN',
  'LS_UPLOAD_RANGE',
  'LS_UPLOAD_INVALID',
  'LS_TOO_MANY_UPLOADS',
  'LS_UPLOAD_TOO_LARGE',
  'LS_QUOTA_EXCEEDED',
  'LS_MANIFEST_INVALID',
  'LS_MANIFEST_TOO_LARGE',
  'LS_MANIFEST_BLOB_UNKNOWN',
  'LS_ENDPOINT_NOT_FOUND',
  'LS_UNAUTHORIZED',
  'LS_DENIED',
  'LS_TOKEN_REQUEST_INVALID',
  'LS_TOO_MANY_LOGINS',
  'LS_LOGIN_QUEUE_FULL',
  'LS_REQUEST_BODY_INVALID',
  'LS_UPSTREAM_DENIED',
  'LS_UPSTREAM_RATE_LIMITED',
  'LS_UPSTREAM_UNAVAILABLE',
  'LS_UPSTREAM_TIMEOUT',
  'LS_UPSTREAM_BAD_RESPONSE',
  'LS_UPSTREAM_HOST_REFUSED',
  'LS_CONTENT_MISMATCH',
  'LS_DATA_DIR_LOCKED',
  'LS_CONFIG_INVALID',
  'LS_DATABASE_TOO_NEW',
  'LS_BUNDLE_INVALID',
  'LS_BUNDLE_CONTENT_MISSING',
  'LS_ADMIN_TOKEN_INVALID',
  'LS_ADMIN_SERVER_UNTRUSTED',
  'LS_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class LongshoreError extends Error {
  override readonly name: string = 'LongshoreError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Structured facts for the client's `detail` and for logs; never secrets. */
    readonly detail?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Raised while loading configuration; main prints it and exits non-zero. */
export class ConfigError extends LongshoreError {
  override readonly name = 'ConfigError';
  constructor(message: string) {
    super('LS_CONFIG_INVALID', message);
  }
}

export function isLongshoreError(err: unknown, code?: ErrorCode): err is LongshoreError {
  return err instanceof LongshoreError && (code === undefined || err.code === code);
}
