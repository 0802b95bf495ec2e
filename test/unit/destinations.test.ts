// The address classes and host patterns that decide where an upstream may send the mirror (destinations.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyAddress, matchesHost, tokenHostsFor } from '../../src/upstream/destinations.js';

describe('upstream destinations', () => {
  it('classes every special-purpose range, and IPv4-mapped IPv6 as its IPv4 address', () => {
    const cases: Array<[string, string]> = [
      ['8.8.8.8', 'public'], ['104.16.0.1', 'public'], ['2606:4700::1', 'public'],
      ['127.0.0.1', 'loopback'], ['127.255.0.2', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'], ['[::1]', 'loopback'],
      ['169.254.169.254', 'link-local'], ['169.254.0.1', 'link-local'], ['fe80::1', 'link-local'], ['::ffff:169.254.169.254', 'link-local'],
      ['10.0.0.1', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'], ['fd00::1', 'private'], ['fc00::1', 'private'],
      ['172.32.0.1', 'public'], ['100.63.255.255', 'public'],
      ['100.64.0.1', 'cgnat'], ['100.127.255.255', 'cgnat'],
      ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
      ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'],
      ['192.0.2.1', 'reserved'], ['255.255.255.255', 'reserved'], ['64:ff9b::7f00:1', 'reserved'], ['2002:7f00:1::', 'reserved'],
      ['not-an-ip', 'reserved'],
    ];
    for (const [address, cls] of cases) assert.equal(classifyAddress(address), cls, address);
  });

  it('matches exact hosts and "*." suffixes, never the bare parent', () => {
    const patterns = ['*.cloudflare.docker.com', 'cdn.example', '[::1]'];
    assert.ok(matchesHost('production.cloudflare.docker.com', patterns));
    assert.ok(matchesHost('a.b.cloudflare.docker.com', patterns));
    assert.ok(matchesHost('CDN.Example.', patterns));
    assert.ok(matchesHost('::1', patterns));
    assert.ok(!matchesHost('cloudflare.docker.com', patterns));
    assert.ok(!matchesHost('evilcloudflare.docker.com', patterns));
    assert.ok(!matchesHost('cdn.example.evil', patterns));
    assert.ok(!matchesHost('x.cdn.example', patterns));
  });

  it('allows auth.docker.io by default for Docker Hub only, and lets tokenHosts replace it', () => {
    assert.deepEqual(tokenHostsFor(new URL('https://registry-1.docker.io'), null), ['auth.docker.io']);
    assert.deepEqual(tokenHostsFor(new URL('https://index.docker.io'), null), ['auth.docker.io']);
    assert.deepEqual(tokenHostsFor(new URL('https://ghcr.io'), null), []);
    assert.deepEqual(tokenHostsFor(new URL('https://registry-1.docker.io'), []), []);
  });
});
