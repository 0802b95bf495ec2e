// What a registry API request is for, parsed once at the edge: the pull fast path, the router, client
// authorization and the token endpoint all read this value, and no other code matches registry paths.
// Two parses of one path that disagree are how access-control bugs are born (the check would authorise
// one endpoint and the router serve another).
//
// Paths are relative to /v2 (distribution-spec "Endpoints"). Repository names contain slashes, so the
// name is everything before the endpoint's fixed suffix; its grammar is checked when it is routed
// (registry/routing.ts). Upload paths are tested before content paths: "<name>/blobs/uploads" would
// otherwise read as a blob whose digest is "uploads".

export type RegistryTarget =
  | { endpoint: 'base' }
  | { endpoint: 'catalog' }
  | { endpoint: 'manifest'; name: string; reference: string }
  | { endpoint: 'blob'; name: string; digest: string }
  /** POST /<name>/blobs/uploads/ (the trailing slash is optional, as clients differ). */
  | { endpoint: 'upload-start'; name: string }
  | { endpoint: 'upload'; name: string; id: string }
  | { endpoint: 'tags'; name: string }
  | { endpoint: 'referrers'; name: string; digest: string }
  | { endpoint: 'unknown' };

const UPLOAD_START = /^\/(.+)\/blobs\/uploads\/?$/;
/** Session ids are UUIDs this process made; anything else in that place names no session. */
const UPLOAD = /^\/(.+)\/blobs\/uploads\/([A-Za-z0-9-]+)$/;
const CONTENT = /^\/(.+)\/(manifests|blobs)\/([^/]+)$/;
const TAGS = /^\/(.+)\/tags\/list$/;
const REFERRERS = /^\/(.+)\/referrers\/([^/]+)$/;

/** `path`: the request's path below /v2, without the query ("/library/alpine/manifests/3.19"). */
export function parseTarget(path: string): RegistryTarget {
  if (path === '/' || path === '') return { endpoint: 'base' };
  if (path === '/_catalog') return { endpoint: 'catalog' };
  let m: RegExpExecArray | null;
  // The upload patterns all contain this; most requests (manifests, blobs) skip them on one search.
  if (path.includes('/blobs/uploads')) {
    m = UPLOAD_START.exec(path);
    if (m) return { endpoint: 'upload-start', name: m[1]! };
    m = UPLOAD.exec(path);
    if (m) return { endpoint: 'upload', name: m[1]!, id: m[2]! };
    // "<name>/blobs/uploads/<not a session id>" is no blob either.
    if (/\/blobs\/uploads\/[^/]*$/.test(path)) return { endpoint: 'unknown' };
  }
  m = CONTENT.exec(path);
  if (m) return m[2] === 'manifests' ? { endpoint: 'manifest', name: m[1]!, reference: m[3]! } : { endpoint: 'blob', name: m[1]!, digest: m[3]! };
  m = TAGS.exec(path);
  if (m) return { endpoint: 'tags', name: m[1]! };
  m = REFERRERS.exec(path);
  if (m) return { endpoint: 'referrers', name: m[1]!, digest: m[2]! };
  return { endpoint: 'unknown' };
}

/**
 * The target of a request URL below /v2 ("/library/alpine/manifests/3.19?ns=docker.io"), whose path is
 * everything before the first "?" or "#". Every caller goes through this, not Express's req.path: for
 * "//a?b#c@d" that is null (parseurl falls back to url.parse, which reads a host there), and it drops
 * a "#…" that a parse of the raw URL keeps, so the two could disagree on what a request is.
 */
export function targetOfUrl(url: string): RegistryTarget {
  return parseTarget(pathOfUrl(url));
}

/** A request URL's path: everything before the first "?" or "#". */
export function pathOfUrl(url: string): string {
  const end = url.search(/[?#]/);
  return end < 0 ? url : url.slice(0, end);
}

/**
 * containerd's `?ns=<host>` (hosts.toml mirrors send it on every request), from a request URL or its
 * query string: the value when the parameter is given exactly once, else undefined.
 */
export function nsOf(url: string): string | undefined {
  const at = url.indexOf('?');
  if (at < 0) return undefined;
  const values = new URLSearchParams(url.slice(at + 1)).getAll('ns');
  return values.length === 1 ? values[0] : undefined;
}

/** The repository a target names, if any. */
export function nameOf(target: RegistryTarget): string | undefined {
  return 'name' in target ? target.name : undefined;
}
