// Which upstream a request is for, and the repository name on that upstream. In order:
//   1. containerd's `?ns=<host>` query parameter (hosts.toml mirrors send it on every request);
//   2. a leading path component naming a configured host: /v2/ghcr.io/owner/img/manifests/1.0;
//   3. the default upstream (dockerd's registry-mirrors sends bare Docker Hub names).
// A host that is not configured is refused here, before any outbound request can be built from it.
import { LongshoreError } from '../errors.js';
import { assertName } from './reference.js';

export interface RepositoryRef {
  /** The configured upstream's key, e.g. "docker.io". */
  readonly upstream: string;
  /** The repository's name on that upstream, e.g. "library/alpine". */
  readonly name: string;
}

export const DOCKER_HUB = 'docker.io';
/** The `upstream` of local (pushed) repositories: not a host name, so no upstream can ever be called this. */
export const LOCAL = '@local';
/** Hosts that mean Docker Hub in image references and in containerd's ns parameter. */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export class UpstreamRouter {
  private readonly hosts: ReadonlySet<string>;

  constructor(upstreams: Iterable<string>, private readonly defaultUpstream: string, private readonly localPrefixes: readonly string[] = []) {
    this.hosts = new Set(upstreams);
  }

  /** `path` is the repository part of /v2/<path>/manifests/…, not yet validated. */
  route(path: string, ns: string | undefined): RepositoryRef {
    if (ns !== undefined) return this.qualify(this.known(ns), path);
    if (this.localPrefixes.some((prefix) => path.startsWith(prefix))) return { upstream: LOCAL, name: assertName(path) };
    const slash = path.indexOf('/');
    if (slash > 0) {
      const first = path.slice(0, slash);
      if (looksLikeHost(first)) return this.qualify(this.known(first), path.slice(slash + 1));
    }
    return this.qualify(this.defaultUpstream, path);
  }

  private known(host: string): string {
    const key = DOCKER_HUB_ALIASES.has(host) && this.hosts.has(DOCKER_HUB) ? DOCKER_HUB : host;
    if (!this.hosts.has(key)) {
      throw new LongshoreError('LS_UPSTREAM_UNKNOWN', `registry host "${host.slice(0, 255)}" is not configured as an upstream of this mirror`, { host: host.slice(0, 255) });
    }
    return key;
  }

  private qualify(upstream: string, name: string): RepositoryRef {
    assertName(name);
    // Docker Hub's official images live under library/: "alpine" is "library/alpine".
    if (upstream === DOCKER_HUB && !name.includes('/')) name = `library/${name}`;
    return { upstream, name };
  }
}

/** Docker's rule for the first component of a reference: a host has a dot or a port, or is localhost. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}
