// Which repository a request is for: a local (pushed) one, or one of an upstream with its name there.
//
// Reads, in order:
//   1. containerd's `?ns=<host>` query parameter (hosts.toml mirrors send it on every request): that
//      upstream, always — mirror traffic is never served from local repositories;
//   2. a name under `local.prefixes`, as the client wrote it: local;
//   3. a leading path component naming a configured host: /v2/ghcr.io/owner/img/manifests/1.0;
//   4. a name a push has made a local repository (it holds pushed content, or an upload is open): local;
//   5. the default upstream (dockerd's registry-mirrors sends bare Docker Hub names), where Docker Hub's
//      rule makes a single name official: "alpine" is "library/alpine".
// Writes (pushes, deletes) go to local repositories only. A write to a name that is not local yet
// creates it, exactly as `registry:2` does, unless the name may be asked for by mirror clients:
//   - a request with `?ns=` or a host component is for that upstream;
//   - `library/…` is Docker Hub's namespace of official images, which registry-mirrors and podman's
//     mirrors ask for as `library/alpine` (clients that name this mirror directly write `alpine`);
//   - a name the mirror already caches from the default upstream under that very name (two-part
//     Docker Hub names such as `bitnami/redis`, which mirror clients ask for as they are);
//   - `local.createOnPush` is false.
// Each refusal names the setting that would allow the write. A host that is not configured is refused
// here, before any outbound request can be built from it.
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
/** Docker Hub's namespace of official images: what mirror clients ask for when a user writes `alpine`. */
const OFFICIAL = 'library/';

/** Which names are local repositories right now. */
export interface LocalRepositories {
  has(name: string): boolean;
}

export interface LocalNaming {
  /** `local.prefixes`: names starting with one of them are local, as the client wrote them. */
  prefixes?: readonly string[];
  /** `local.createOnPush`: whether a push may create a local repository outside the prefixes. Default true. */
  createOnPush?: boolean;
  /** The local repositories that pushes created. None when absent. */
  local?: LocalRepositories;
  /** Whether the mirror holds cached content of an upstream repository (a push must not shadow it). */
  cached?: (repo: RepositoryRef) => boolean;
}

const NO_LOCAL: LocalRepositories = { has: () => false };

export class UpstreamRouter {
  private readonly hosts: ReadonlySet<string>;
  private readonly prefixes: readonly string[];
  private readonly createOnPush: boolean;
  private readonly local: LocalRepositories;
  private readonly cached: (repo: RepositoryRef) => boolean;

  constructor(upstreams: Iterable<string>, private readonly defaultUpstream: string, naming: LocalNaming = {}) {
    this.hosts = new Set(upstreams);
    this.prefixes = naming.prefixes ?? [];
    this.createOnPush = naming.createOnPush ?? true;
    this.local = naming.local ?? NO_LOCAL;
    this.cached = naming.cached ?? (() => false);
  }

  /** Where a read goes. `path` is the repository part of /v2/<path>/manifests/…, not yet validated. */
  route(path: string, ns: string | undefined): RepositoryRef {
    if (ns !== undefined) return this.qualify(this.known(ns), path);
    if (this.isPrefixed(path)) return { upstream: LOCAL, name: assertName(path) };
    const host = hostOf(path);
    if (host !== undefined) return this.qualify(this.known(host), path.slice(host.length + 1));
    if (!path.startsWith(OFFICIAL) && this.local.has(path)) return { upstream: LOCAL, name: assertName(path) };
    return this.qualify(this.defaultUpstream, path);
  }

  /**
   * Where a write (upload, manifest push, delete) goes: a local repository, existing or created by this
   * write. Throws LS_UNSUPPORTED, naming the setting that would allow it, for a name that stays a cache.
   */
  routeWrite(path: string, ns: string | undefined): RepositoryRef {
    const target = this.writeTarget(path, ns);
    if ('refusal' in target) throw target.refusal;
    return target;
  }

  /**
   * The repository a request's rights are checked on (client auth): where a write would go when the
   * rule lets it create a local repository, else where a read goes (the write is then refused anyway).
   */
  routeFor(path: string, ns: string | undefined, write: boolean): RepositoryRef {
    if (!write) return this.route(path, ns);
    const target = this.writeTarget(path, ns);
    return 'refusal' in target ? this.route(path, ns) : target;
  }

  private writeTarget(path: string, ns: string | undefined): RepositoryRef | { refusal: LongshoreError } {
    const read = this.route(path, ns);
    if (read.upstream === LOCAL) return read;
    const refuse = (why: string, setting: string) => ({ refusal: this.refusal(path, read, why, setting) });
    if (ns !== undefined) {
      const why = `a request with ?ns= is mirror traffic for ${read.upstream} (containerd's hosts.toml), never local`;
      return { refusal: new LongshoreError('LS_UNSUPPORTED', `${path.slice(0, 255)} is a read-only cache of ${read.upstream}; push without ?ns=: ${why}`, { upstream: read.upstream }) };
    }
    if (hostOf(path) !== undefined) return refuse(`its first component names the upstream ${read.upstream}`, 'local.prefixes');
    if (path.startsWith(OFFICIAL)) {
      return refuse(`library/ is Docker Hub's namespace of official images, which mirror clients (registry-mirrors, podman) ask for`, 'local.prefixes');
    }
    if (!this.createOnPush) return refuse('pushes create no repositories on this mirror (local.createOnPush is false)', 'local.createOnPush');
    if (read.name === path && this.cached(read)) {
      return refuse(`this mirror caches ${read.upstream}'s ${path}, which mirror clients ask for by this very name; a push would replace it for them`, 'local.prefixes');
    }
    return { upstream: LOCAL, name: path };
  }

  /**
   * The default upstream's repository that mirror clients (registry-mirrors, podman) would reach by the
   * name a push is about to make local: a multi-part name that is not local yet. Single names shadow
   * nothing, since mirror clients ask for `library/<name>`. The caller asks the upstream whether it
   * has that repository before letting the push create the name (shadowRefusal).
   */
  shadowed(path: string): RepositoryRef | undefined {
    if (!path.includes('/') || path.startsWith(OFFICIAL) || this.isPrefixed(path) || hostOf(path) !== undefined || this.local.has(path)) return undefined;
    return { upstream: this.defaultUpstream, name: path };
  }

  shadowRefusal(path: string, upstream: RepositoryRef): LongshoreError {
    return this.refusal(path, upstream, `${upstream.upstream} has a repository ${path}, which mirror clients ask for by this very name; a push would replace it for them`, 'local.prefixes');
  }

  private refusal(path: string, read: RepositoryRef, why: string, setting: string): LongshoreError {
    const shown = path.slice(0, 255);
    const options = [
      ...(this.prefixes.length > 0 ? [`push to a local repository (${this.prefixes.map((p) => `${p}…`).join(', ')})`] : []),
      ...(this.createOnPush ? [`push to a new name such as "${suggestion(path)}"`] : ['set local.createOnPush to true']),
    ];
    const message = `${shown} is a read-only cache of ${read.upstream}; ${options.join(' or ')}, or add "${shown}" to local.prefixes to make this name local: ${why}`;
    return new LongshoreError('LS_UNSUPPORTED', message, { upstream: read.upstream, setting });
  }

  private isPrefixed(path: string): boolean {
    return this.prefixes.some((prefix) => path.startsWith(prefix));
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
    if (upstream === DOCKER_HUB && !name.includes('/')) name = `${OFFICIAL}${name}`;
    return { upstream, name };
  }
}

/** The first component of `path` when Docker's rule makes it a host: it has a dot or a port, or is localhost. */
function hostOf(path: string): string | undefined {
  const slash = path.indexOf('/');
  if (slash <= 0) return undefined;
  const first = path.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : undefined;
}

/** A name a push could use instead of `path`: its last component, for `library/app` "app". */
function suggestion(path: string): string {
  const last = path.slice(path.lastIndexOf('/') + 1);
  return /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/.test(last) ? last : 'app';
}
