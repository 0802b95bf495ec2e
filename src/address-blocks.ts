// Sets of IP addresses written as a config writes them: "10.0.0.7", "::1", "10.0.0.0/8", "fd00::/8".
// A leaf module (like digest.ts): the config schema validates entries with it, and http/ builds lookups.
import { BlockList, isIP } from 'node:net';
import { ConfigError } from './errors.js';

/** A BlockList of addresses and CIDR blocks; throws ConfigError on a malformed entry (the schema checks first). */
export function addressBlocks(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const parsed = parseEntry(entry);
    if (parsed === undefined) throw new ConfigError(`not an IP address or CIDR block: ${entry}`);
    if (parsed.prefix === undefined) list.addAddress(parsed.address, parsed.family);
    else list.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return list;
}

/** True when an entry is an address or a CIDR block (the config schema's check). */
export function isAddressBlock(entry: string): boolean {
  return parseEntry(entry) !== undefined;
}

function parseEntry(entry: string): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const family = version === 6 ? 'ipv6' : 'ipv4';
  if (slash < 0) return { address, prefix: undefined, family };
  const text = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(text)) return undefined;
  const prefix = Number(text);
  return prefix <= (version === 6 ? 128 : 32) ? { address, prefix, family } : undefined;
}
