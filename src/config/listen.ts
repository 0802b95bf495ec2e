// Listen addresses ("host:port", "[::1]:port", ":port" or "port"), and how a process on the same
// host reaches the server that listens on one.
import { ConfigError } from '../errors.js';

export function parseListen(listen: string): { host: string | undefined; port: number } {
  const match = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(listen);
  if (!match) throw new ConfigError(`listen: expected "host:port", got ${JSON.stringify(listen)}`);
  return { host: match[1] || undefined, port: Number(match[2]) };
}

/** The origin that reaches `listen` from this host: a wildcard address is asked on loopback. */
export function localOrigin(listen: string, scheme: 'http' | 'https'): string {
  const { host, port } = parseListen(listen);
  let target = host === undefined || host === '0.0.0.0' ? '127.0.0.1' : host;
  if (target === '::') target = '::1';
  return `${scheme}://${target.includes(':') ? `[${target}]` : target}:${port}`;
}
