// Which address a request is counted against (failed logins, anonymous upload sessions), and who may
// choose it: only a configured proxy, never the client.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { addressBlocks, isAddressBlock } from '../../src/address-blocks.js';
import { parseConfig } from '../../src/config/load.js';
import { clientAddressOf } from '../../src/http/client-address.js';

function request(peer: string | undefined, forwardedFor?: string | string[]): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } } as unknown as IncomingMessage;
}

describe('client address', () => {
  it('ignores X-Forwarded-For when no proxy is trusted: a client cannot pick its own identity', () => {
    const of = clientAddressOf([]);
    assert.equal(of(request('198.51.100.7', '203.0.113.1')), '198.51.100.7');
    assert.equal(of(request('::ffff:198.51.100.7', '203.0.113.1')), '198.51.100.7', 'an IPv4 peer on a dual-stack socket');
    assert.equal(of(request(undefined)), 'unknown');
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', () => {
    const of = clientAddressOf(['10.0.0.0/8']);
    assert.equal(of(request('198.51.100.7', '10.1.1.1, 203.0.113.1')), '198.51.100.7');
  });

  it('takes the address the trusted proxy appended, not what the client wrote left of it', () => {
    const of = clientAddressOf(['127.0.0.1']);
    // The client sent "X-Forwarded-For: 6.6.6.6"; HAProxy appended the address it saw.
    assert.equal(of(request('127.0.0.1', '6.6.6.6, 203.0.113.9')), '203.0.113.9');
    assert.equal(of(request('127.0.0.1', ['6.6.6.6', '203.0.113.9'])), '203.0.113.9', 'the header given twice');
    assert.equal(of(request('::ffff:127.0.0.1', '203.0.113.9')), '203.0.113.9');
    assert.equal(of(request('127.0.0.1')), '127.0.0.1', 'no header: the proxy itself');
  });

  it('walks past a chain of trusted proxies to the first untrusted hop', () => {
    const of = clientAddressOf(['10.0.0.0/8', 'fd00::/8']);
    assert.equal(of(request('10.0.0.1', '6.6.6.6, 198.51.100.1, 10.9.9.9, fd00::5')), '198.51.100.1');
    assert.equal(of(request('10.0.0.1', '10.2.2.2, 10.3.3.3')), '10.2.2.2', 'every hop trusted: the leftmost');
  });

  it('stops at a malformed hop and counts the request against the last good one', () => {
    const of = clientAddressOf(['10.0.0.0/8']);
    assert.equal(of(request('10.0.0.1', '203.0.113.1, unknown')), '10.0.0.1');
    assert.equal(of(request('10.0.0.1', '203.0.113.1, 10.0.0.2, not-an-ip')), '10.0.0.1');
    assert.equal(of(request('10.0.0.1', '203.0.113.1,, 10.0.0.2')), '10.0.0.2');
  });

  it('looks at a bounded number of hops however long the header is', () => {
    const of = clientAddressOf(['10.0.0.0/8']);
    const hops = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const address = of(request('10.0.0.1', ['203.0.113.1', ...hops].join(', ')));
    assert.ok(hops.slice(-16).includes(address), `one of the last 16 hops, not a walk of 10,000: ${address}`);
  });

  it('accepts addresses and CIDR blocks in server.trustedProxies and refuses anything else at load', () => {
    for (const good of ['10.0.0.7', '10.0.0.0/8', '::1', 'fd00::/8', '0.0.0.0/0']) assert.ok(isAddressBlock(good), good);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'proxy.internal', '10.0.0.0/', '10.0.0.0/8/1', '', '10.0.0.0/ 8']) assert.ok(!isAddressBlock(bad), bad);
    assert.deepEqual(parseConfig({ server: { trustedProxies: ['10.0.0.0/8'] } }).server.trustedProxies, ['10.0.0.0/8']);
    assert.deepEqual(parseConfig({}).server.trustedProxies, []);
    assert.throws(() => parseConfig({ server: { trustedProxies: ['proxy.internal'] } }), /trustedProxies.*IP address or CIDR/s);
    assert.throws(() => addressBlocks(['10.0.0.0/33']), { code: 'LS_CONFIG_INVALID' });
  });
});
