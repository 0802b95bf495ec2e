// Which address a request comes from, for what is counted per client: failed logins (the token
// endpoint, the dashboard's Basic login) and open upload sessions of anonymous pushers.
//
// Behind a reverse proxy (HAProxy, a Kubernetes ingress) every request's peer is the proxy, so counting
// per peer would let one attacker's failures lock every user out. With `server.trustedProxies`, a
// request whose peer is one of them is attributed to the address that proxy appended to
// X-Forwarded-For (HAProxy's `option forwardfor`), walking the list from the right past further
// trusted proxies. Everything left of the first untrusted entry was written by the client and is
// ignored, so a client cannot choose its own identity by sending the header. From an untrusted peer the
// header is never read.
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { addressBlocks } from '../address-blocks.js';
import type { RequestLocals } from './middleware/request-context.js';

/** Forwarded hops looked at, at most: the header is the client's to make long. */
const MAX_HOPS = 16;

export type ClientAddressOf = (req: IncomingMessage) => string;

export function clientAddressOf(trustedProxies: readonly string[]): ClientAddressOf {
  if (trustedProxies.length === 0) return (req) => normalize(req.socket.remoteAddress) ?? 'unknown';
  const trusted = addressBlocks(trustedProxies);
  const isTrusted = (address: string) => trusted.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  return (req) => {
    let address = normalize(req.socket.remoteAddress);
    if (address === undefined) return 'unknown';
    if (!isTrusted(address)) return address;
    const hops = forwardedHops(req.headers['x-forwarded-for']);
    for (let i = hops.length - 1, seen = 0; i >= 0 && seen < MAX_HOPS; i--, seen++) {
      const hop = normalize(hops[i]!.trim());
      // A malformed hop: what lies left of it cannot be trusted; the last good hop is the client.
      if (hop === undefined || isIP(hop) === 0) return address;
      address = hop;
      if (!isTrusted(hop)) return hop;
    }
    return address;
  };
}

function forwardedHops(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  return (Array.isArray(header) ? header.join(',') : header).split(',');
}

/** "::ffff:10.0.0.1" (an IPv4 peer on a dual-stack socket) is 10.0.0.1. */
function normalize(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined;
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** The address a request is counted against: as noted at the edge, else (a router mounted alone) its peer. */
export function clientAddress(req: Request, res: Response): string {
  return (res.locals as RequestLocals).client ?? normalize(req.socket.remoteAddress) ?? 'unknown';
}

/** Express middleware: notes the client's address in `res.locals.client` for the handlers that count per client. */
export function noteClientAddress(of: ClientAddressOf) {
  return (req: Request, res: Response, next: NextFunction): void => {
    (res.locals as RequestLocals).client = of(req);
    next();
  };
}
