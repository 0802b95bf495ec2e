// Issue 14 item 4: one composition root (src/core.ts) builds the core for the server and for an admin
// command working alone. The signals the core shares (content grew, the disk needs room) are objects
// built first and wired to the evictor there, for both roles.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { buildCore, type Core } from '../../src/core.js';
import { parseConfig } from '../../src/config/load.js';
import type { Digest } from '../../src/digest.js';
import { LOCAL } from '../../src/registry/routing.js';
import { waitFor } from '../support/wait.js';

const digest = (c: string) => `sha256:${c.repeat(64)}` as Digest;

describe('the core an admin command builds alone', () => {
  let dir: string;
  let core: Core;
  const config = () => parseConfig({
    dataDir: dir,
    // Nothing here contacts an upstream: port 9 (discard) is never asked.
    upstreams: { 'docker.io': { url: 'http://127.0.0.1:9' } },
    local: { prefixes: ['team/'] },
    cache: { maxSize: 1000, minFreeSpace: 0, protectRecent: 0 },
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-core-'));
    core = await buildCore(config(), pino({ level: 'silent' }), { role: 'command', task: 'test', reconcile: false });
  });
  after(async () => {
    await core.close(0);
    await rm(dir, { recursive: true, force: true });
  });

  it('routes the local prefixes to the local registry, as the server does', () => {
    assert.equal(core.router.route('team/app', undefined).upstream, LOCAL);
    assert.equal(core.router.route('library/alpine', undefined).upstream, 'docker.io');
  });

  it('content that grows the cache past its budget wakes the evictor', async () => {
    core.local.recordBlob({ digest: digest('a'), size: 5000, upstream: 'docker.io', repository: 'library/x' });
    await waitFor(() => core.catalog.totals().bytes === 0, { what: 'evicted down to the budget', timeoutMs: 30_000 });
  });

  it('a request for disk room wakes the evictor', async () => {
    // Recorded past LocalContent, so no growth is announced: only the disk signal can start a run.
    core.catalog.recordContent({ digest: digest('b'), size: 5000, upstream: 'docker.io', repository: 'library/x' });
    assert.equal(core.catalog.totals().bytes, 5000);
    core.disk.relieve();
    await waitFor(() => core.catalog.totals().bytes === 0, { what: 'evicted down to the budget', timeoutMs: 30_000 });
  });
});
