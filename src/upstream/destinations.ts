// Which hosts an upstream may send the mirror to. An upstream answers with URLs of its own choosing —
// blob redirects (Docker Hub's CDN) and the token realm of its WWW-Authenticate challenge — and a
// hostile or compromised one would use them to reach what only the mirror can reach (loopback admin
// ports, a cloud metadata service at 169.254.169.254, the LAN) or to collect the mirror's credentials.
//
// - Token realms: only the upstream's own host or a host named in `tokenHosts` (Docker Hub: auth.docker.io).
// - Redirect targets: addresses of the class "public", or of the upstream's own class (a LAN registry may
//   redirect within the LAN, a loopback test registry to loopback). With `redirectHosts` set, the
//   target's name must also match it. The class is checked on the addresses the connection then uses:
//   RedirectGuard.lookup is the redirect agent's DNS lookup, so a name that answers a public address to
//   a check and a private one to the connect (DNS rebinding) gets no second answer.
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { LongshoreError } from '../errors.js';

export type AddressClass = 'public' | 'loopback' | 'private' | 'link-local' | 'cgnat' | 'unspecified' | 'multicast' | 'reserved';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Every address a host name resolves to. */
export type ResolveHost = (hostname: string) => Promise<ResolvedAddress[]>;
export type ClassifyAddress = (address: string) => AddressClass;

/** IANA special-purpose registries (RFC 6890 and successors); the first matching class wins. */
const SPECIAL: ReadonlyArray<[AddressClass, ReadonlyArray<[string, number, 'ipv4' | 'ipv6']>]> = [
  ['unspecified', [['0.0.0.0', 8, 'ipv4'], ['::', 128, 'ipv6']]],
  ['loopback', [['127.0.0.0', 8, 'ipv4'], ['::1', 128, 'ipv6']]],
  // 169.254.169.254, the cloud metadata service, is in here.
  ['link-local', [['169.254.0.0', 16, 'ipv4'], ['fe80::', 10, 'ipv6']]],
  ['private', [['10.0.0.0', 8, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.168.0.0', 16, 'ipv4'], ['fc00::', 7, 'ipv6']]],
  ['cgnat', [['100.64.0.0', 10, 'ipv4']]],
  ['multicast', [['224.0.0.0', 4, 'ipv4'], ['ff00::', 8, 'ipv6']]],
  ['reserved', [
    ['192.0.0.0', 24, 'ipv4'], ['192.0.2.0', 24, 'ipv4'], ['198.18.0.0', 15, 'ipv4'], ['198.51.100.0', 24, 'ipv4'],
    ['203.0.113.0', 24, 'ipv4'], ['240.0.0.0', 4, 'ipv4'],
    // Documentation, discard-only, and the translation prefixes that embed an IPv4 address (NAT64, 6to4,
    // Teredo), which could name a private IPv4 host behind a gateway.
    ['2001:db8::', 32, 'ipv6'], ['100::', 64, 'ipv6'], ['64:ff9b::', 96, 'ipv6'], ['64:ff9b:1::', 48, 'ipv6'],
    ['2002::', 16, 'ipv6'], ['2001::', 32, 'ipv6'],
  ]],
];

const BLOCKS: ReadonlyArray<[AddressClass, BlockList]> = SPECIAL.map(([cls, nets]) => {
  const list = new BlockList();
  for (const [network, prefix, family] of nets) list.addSubnet(network, prefix, family);
  return [cls, list];
});

/** The class of an IP address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is classed as its IPv4 address. Not an IP: "reserved". */
export function classifyAddress(address: string): AddressClass {
  const bare = address.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  if (family === 0) return 'reserved';
  for (const [cls, list] of BLOCKS) {
    if (list.check(bare, family === 4 ? 'ipv4' : 'ipv6')) return cls;
  }
  return 'public';
}

export const resolveHost: ResolveHost = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * Host patterns of `redirectHosts` and `tokenHosts`: an exact host name or IP address, or "*.example.com",
 * which matches every name ending in ".example.com" (any depth) but not example.com itself.
 */
export function matchesHost(hostname: string, patterns: readonly string[]): boolean {
  const host = normalHost(hostname);
  return patterns.some((raw) => {
    const pattern = normalHost(raw);
    return pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1 : host === pattern;
  });
}

/** Lower case, without IPv6 brackets or a trailing dot: "[::1]" and "::1", "Example.com." and "example.com" are one host. */
function normalHost(host: string): string {
  return host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
}

/** Docker Hub's registry hosts, whose token service is on another host. */
const DOCKER_HUB_HOSTS = new Set(['registry-1.docker.io', 'index.docker.io']);

/** Hosts a token realm may be on, besides the upstream's own: `tokenHosts`, or the built-in default. */
export function tokenHostsFor(upstreamUrl: URL, configured: readonly string[] | null): readonly string[] {
  if (configured !== null) return configured;
  return DOCKER_HUB_HOSTS.has(upstreamUrl.hostname) ? ['auth.docker.io'] : [];
}

/** How long the upstream's own address class is remembered. */
const UPSTREAM_CLASS_TTL_MS = 60_000;

export interface RedirectGuardOptions {
  /** The upstream's name in config, for messages. */
  upstream: string;
  upstreamUrl: URL;
  /** `redirectHosts`: null allows any name whose addresses pass the class rule. */
  redirectHosts: readonly string[] | null;
  resolve?: ResolveHost;
  classify?: ClassifyAddress;
  /** Told about each refused target, with the address (which the client's error does not carry). */
  onRefused?: (host: string, address: string | undefined, addressClass: AddressClass | undefined) => void;
}

export class RedirectGuard {
  private readonly resolve: ResolveHost;
  private readonly classify: ClassifyAddress;
  private upstreamClasses: { classes: Promise<ReadonlySet<AddressClass>>; until: number } | undefined;

  constructor(private readonly options: RedirectGuardOptions) {
    this.resolve = options.resolve ?? resolveHost;
    this.classify = options.classify ?? classifyAddress;
  }

  /** A redirect to the upstream's own origin needs no check: it is the configured upstream. */
  isUpstream(url: URL): boolean {
    return url.origin === this.options.upstreamUrl.origin;
  }

  /**
   * Checks what can be checked before connecting: the scheme, the name against `redirectHosts`, and an IP
   * literal's class (a connection to an IP literal does no lookup). Names are checked by `lookup`.
   */
  async checkTarget(url: URL): Promise<void> {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new LongshoreError('LS_UPSTREAM_BAD_RESPONSE', `upstream ${this.options.upstream} redirected to a non-http URL`);
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const { redirectHosts } = this.options;
    if (redirectHosts !== null && host !== this.options.upstreamUrl.hostname.replace(/^\[|\]$/g, '') && !matchesHost(host, redirectHosts)) {
      this.options.onRefused?.(host, undefined, undefined);
      throw this.refused(host, `is not in upstreams.${this.options.upstream}.redirectHosts`);
    }
    if (isIP(host) !== 0) await this.checkAddresses(host, [host]);
  }

  /**
   * The redirect agent's DNS lookup (net.connect's `lookup` option): resolves once, and answers only
   * if every address is allowed — so the connection goes to exactly the addresses checked.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    const answer = callback as (err: Error | null, address: string | ResolvedAddress[], family?: number) => void;
    this.resolve(hostname).then(
      async (addresses) => {
        const family = options.family === 4 || options.family === 6 ? options.family : undefined;
        const usable = family === undefined ? addresses : addresses.filter((a) => a.family === family);
        if (usable.length === 0) throw Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' });
        await this.checkAddresses(hostname, usable.map((a) => a.address));
        if (options.all) answer(null, usable);
        else answer(null, usable[0]!.address, usable[0]!.family);
      },
    ).catch((err: unknown) => answer(err instanceof Error ? err : new Error(String(err)), ''));
  };

  private async checkAddresses(host: string, addresses: readonly string[]): Promise<void> {
    const allowed = await this.allowedClasses();
    for (const address of addresses) {
      const cls = this.classify(address);
      if (!allowed.has(cls)) {
        this.options.onRefused?.(host, address, cls);
        throw this.refused(host, `resolves to a ${cls} address; redirects may go to public addresses${allowed.size > 1 ? ` or ${[...allowed].filter((c) => c !== 'public').join(', ')} ones like the upstream's` : ''}`);
      }
    }
  }

  /** "public" and the classes of the upstream's own addresses. An upstream that does not resolve counts as public. */
  private allowedClasses(): Promise<ReadonlySet<AddressClass>> {
    const now = Date.now();
    if (this.upstreamClasses && this.upstreamClasses.until > now) return this.upstreamClasses.classes;
    const host = this.options.upstreamUrl.hostname.replace(/^\[|\]$/g, '');
    const classes = (isIP(host) !== 0 ? Promise.resolve([{ address: host, family: isIP(host) }]) : this.resolve(host))
      .then((addresses) => new Set<AddressClass>(['public', ...addresses.map((a) => this.classify(a.address))]))
      .catch(() => new Set<AddressClass>(['public']));
    this.upstreamClasses = { classes, until: now + UPSTREAM_CLASS_TTL_MS };
    return classes;
  }

  private refused(host: string, why: string): LongshoreError {
    return new LongshoreError('LS_UPSTREAM_HOST_REFUSED', `upstream ${this.options.upstream} redirected to ${host}, which ${why}`, {
      upstream: this.options.upstream,
      host,
      setting: `upstreams.${this.options.upstream}.redirectHosts`,
    });
  }
}
