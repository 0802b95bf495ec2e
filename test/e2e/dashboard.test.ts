// The dashboard in a real browser (Debian's chromium, driven by playwright-core): after a few pulls
// through an in-process Longshore, the page must show what /api/v1/ reports, load nothing from
// elsewhere, and throw no script errors. A screenshot goes to test/artifacts/dashboard.png.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { RecentPull } from '../../src/admin/recent-pulls.js';
import type { Summary } from '../../src/admin/summary.js';
import type { Digest } from '../../src/registry/reference.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { publishImage } from '../support/images.js';
import { startMirror, type TestMirror } from '../support/mirror.js';
import { waitFor } from '../support/wait.js';
import { findOnPath, describeWithTools } from '../support/e2e/tools.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

describeWithTools('dashboard in a browser', ['chromium'], () => {
  let fake: FakeRegistry;
  let mirror: TestMirror;
  let profile: string;
  let browser: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  const requested: string[] = [];

  before(async () => {
    fake = await FakeRegistry.start();
    mirror = await startMirror({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    profile = await mkdtemp(join(tmpdir(), 'longshore-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: findOnPath('chromium') ?? '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      colorScheme: 'light',
      timeout: 60_000,
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
    page.on('request', (req) => requested.push(req.url()));
  });
  after(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    await mirror?.close();
    await fake?.close();
  });

  it('shows the numbers the admin API reports, the pulled repository, and upstream health', { timeout: 120_000 }, async () => {
    // A miss and a hit for a tag, a platform manifest by digest, and one layer missed then hit.
    const image = publishImage(fake, 'library/webapp', '1.0');
    const manifest = image.platforms['linux/amd64']!;
    const [layer] = [...image.blobs].find(([, bytes]) => bytes.length > 1000)!;
    for (let i = 0; i < 2; i++) {
      assert.equal((await get(`${mirror.url}/v2/library/webapp/manifests/1.0`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    }
    assert.equal((await get(`${mirror.url}/v2/library/webapp/manifests/${manifest}`, { accept: ALL_MANIFEST_TYPES })).status, 200);
    assert.equal(sha256((await get(`${mirror.url}/v2/library/webapp/blobs/${layer}`)).body), layer);
    await waitFor(() => mirror.longshore.catalog.content(layer as Digest) !== undefined);
    assert.equal(sha256((await get(`${mirror.url}/v2/library/webapp/blobs/${layer}`)).body), layer);
    mirror.longshore.catalog.flush();

    await page.goto(`${mirror.url}/ui/`);
    // The page marks <body data-loaded> once it has rendered every API answer.
    await page.locator('body[data-loaded="true"]').waitFor({ state: 'attached', timeout: 30_000 });
    const summary = (await get(`${mirror.url}/api/v1/summary`)).json<Summary>();
    assert.equal(summary.totals.hits, 2, 'one manifest hit and one blob hit');
    assert.equal(summary.cache.objects, 3);

    const shown = (id: string) => page.locator(`#${id}`).getAttribute('data-value');
    const text = (id: string) => page.locator(`#${id}`).innerText();
    assert.equal(await shown('cache-objects'), String(summary.cache.objects));
    assert.equal(await text('cache-objects'), String(summary.cache.objects));
    assert.equal(await shown('cache-bytes'), String(summary.cache.bytes));
    assert.equal(await shown('total-hits'), String(summary.totals.hits));
    assert.equal(await text('total-hits'), String(summary.totals.hits));
    assert.equal(await shown('total-misses'), String(summary.totals.misses));
    assert.equal(await shown('hit-ratio'), String(summary.totals.hitRatio));
    assert.equal(await text('hit-ratio'), `${Math.round(summary.totals.hitRatio! * 1000) / 10}%`);
    assert.equal(await shown('bytes-from-upstream'), String(summary.totals.bytesFromUpstream));

    const recent = (await get(`${mirror.url}/api/v1/recent?limit=20`)).json<{ pulls: RecentPull[] }>().pulls;
    const rows = await page.locator('#recent tr').allInnerTexts();
    assert.equal(rows.length, recent.length);
    assert.equal(rows.length, 3, 'three manifest requests');
    assert.ok(rows.every((row) => row.includes('docker.io/library/webapp')), rows.join('\n'));
    assert.ok(rows.some((row) => row.includes('1.0') && row.includes('miss')), rows.join('\n'));
    assert.ok(rows.some((row) => row.includes('1.0') && row.includes('hit')), rows.join('\n'));

    // Tables and charts are declared once in index.html and built by dashboard.js.
    assert.deepEqual(await page.locator('section[data-table="recent"] thead th').allTextContents(), ['Time', 'Repository', 'Reference', 'Digest', 'Cache', 'Status']);
    assert.equal(await page.locator('section[data-table="top-size"] thead th.num').count(), 2);
    assert.equal(await page.locator('section[aria-labelledby="upstreams-heading"] #upstreams-heading').textContent(), 'Upstreams');
    assert.deepEqual(await page.locator('section[data-chart="bytes"] .legend li').allTextContents(), ['served from cache', 'pulled from upstreams']);
    assert.match(await page.locator('#top-pulls').innerText(), /docker\.io\/library\/webapp/);
    assert.match(await page.locator('#top-size').innerText(), /docker\.io\/library\/webapp/);
    const upstreams = await page.locator('#upstreams').innerText();
    assert.match(upstreams, /docker\.io/);
    assert.match(upstreams, /closed/);
    assert.match(upstreams, /\d+ of 100 left/);
    assert.ok(await page.locator('#bytes-chart path.line').count() >= 1, 'the bytes chart has a line');
    assert.match(await page.locator('#ratio-desc').textContent() ?? '', /Hit ratio since start: 40%/);
    assert.equal(await page.locator('#cache-bar').getAttribute('aria-valuetext'), 'no budget configured');

    const origin = new URL(mirror.url).origin;
    assert.deepEqual(requested.filter((url) => new URL(url).origin !== origin), [], 'nothing is loaded from elsewhere');
    assert.deepEqual(problems, []);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  });
});
