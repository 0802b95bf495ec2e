// Signatures through the mirror with a real upstream: Debian's docker-registry (distribution 2.8), which
// has no referrers API. A signature-shaped artifact (an OCI manifest with `subject` and an
// `artifactType`) is pushed there, once under cosign's `sha256-<hex>.sig` tag and once listed in the
// referrers tag schema's index (`sha256-<hex>`), as clients do for such a registry. Through Longshore it
// is then discovered with the referrers API and with the tag schema, fetched by digest, and the cached
// referrers list is still served while the upstream is down. Then across an air gap: `export
// --with-referrers` carries the image with its signature, skopeo still reads the bundle, and a second
// Longshore, offline with no reachable upstream, imports it and answers the referrers API, the
// signature's tag and its content from the bundle alone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { platformOf } from '../support/images.js';
import { Longshore, REPO_ROOT } from '../support/e2e/longshore.js';
import { parseBearerChallenge, type Credentials } from '../support/e2e/registry-client.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';

const TOOLS = ['skopeo', 'docker-registry', 'openssl'] as const;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const SIGNATURE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** One write to the upstream as the publisher, answering its Bearer challenge for pull,push. */
async function upstreamWrite(url: string, method: 'POST' | 'PUT', credentials: Credentials, body?: Buffer, contentType?: string): Promise<Response> {
  const headers: Record<string, string> = contentType ? { 'content-type': contentType } : {};
  let res = await fetch(url, { method, headers, ...(body ? { body } : {}) });
  if (res.status !== 401) return res;
  await res.arrayBuffer();
  const { realm, service, scope } = parseBearerChallenge(res.headers.get('www-authenticate') ?? '');
  const tokenUrl = new URL(realm!);
  if (service) tokenUrl.searchParams.set('service', service);
  if (scope) tokenUrl.searchParams.set('scope', scope);
  const token = await fetch(tokenUrl, { headers: { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` } });
  const { token: bearer, access_token: access } = await token.json() as { token?: string; access_token?: string };
  res = await fetch(url, { method, headers: { ...headers, authorization: `Bearer ${bearer ?? access}` }, ...(body ? { body } : {}) });
  return res;
}

describeWithTools('signatures and referrers through Longshore from a registry without the referrers API', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let subject: string;
  let signature: string;
  let signatureBody: Buffer;
  let payload: Buffer;
  let gapped: Longshore;
  let work: string;

  async function pushBlob(repository: string, bytes: Buffer): Promise<string> {
    const digest = sha256(bytes);
    // distribution 2.8 has no monolithic POST: a session, then PUT with the bytes.
    const started = await upstreamWrite(`${upstream.registry.url}/v2/${repository}/blobs/uploads/`, 'POST', upstream.publisherCredentials);
    assert.equal(started.status, 202, `blob upload: ${started.status} ${await started.text()}`);
    const location = new URL(started.headers.get('location')!, upstream.registry.url);
    location.searchParams.set('digest', digest);
    const res = await upstreamWrite(location.toString(), 'PUT', upstream.publisherCredentials, bytes, 'application/octet-stream');
    assert.equal(res.status, 201, `blob push: ${res.status} ${await res.text()}`);
    return digest;
  }

  async function pushManifest(repository: string, reference: string, body: Buffer, mediaType: string): Promise<void> {
    const res = await upstreamWrite(`${upstream.registry.url}/v2/${repository}/manifests/${reference}`, 'PUT', upstream.publisherCredentials, body, mediaType);
    assert.equal(res.status, 201, `manifest push ${reference}: ${res.status} ${await res.text()}`);
  }

  before(async () => {
    upstream = teardown.add('upstream stack', await startUpstreamStack(), (s) => s.stop());
    // tagTTL 0: every request asks the upstream again, so the outage below is felt at once.
    longshore = teardown.add('longshore', await Longshore.start({
      upstreamUrl: upstream.proxy.url,
      ...upstream.mirrorCredentials,
      upstream: { tagTTL: 0, retries: 0 },
    }), (l) => l.stop());
    // Nothing listens on port 9, and the mirror is offline anyway.
    gapped = teardown.add('offline longshore', await Longshore.start({ upstreamUrl: 'http://127.0.0.1:9', username: 'x', password: 'y', config: { offline: true } }), (l) => l.stop());
    work = teardown.tempDir('work dir', 'longshore-referrers-');

    const repository = upstream.ocitest.repository;
    subject = upstream.ocitest.index.digest;
    const config = Buffer.from('{}');
    payload = Buffer.from(JSON.stringify({ critical: { image: { 'docker-manifest-digest': subject } }, nonce: randomBytes(8).toString('hex') }));
    const configDigest = await pushBlob(repository, config);
    const payloadDigest = await pushBlob(repository, payload);
    signatureBody = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SIGNATURE,
      config: { mediaType: EMPTY_CONFIG, digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: payloadDigest, size: payload.length }],
      subject: { mediaType: upstream.ocitest.index.mediaType, digest: subject, size: upstream.ocitest.index.size },
      annotations: { 'dev.cosignproject.cosign/signature': 'MEUCIQ-test' },
    }));
    signature = sha256(signatureBody);
    const schemaTag = `sha256-${subject.slice('sha256:'.length)}`;
    await pushManifest(repository, `${schemaTag}.sig`, signatureBody, OCI_MANIFEST);
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: signature, size: signatureBody.length, artifactType: SIGNATURE }],
    }));
    await pushManifest(repository, schemaTag, index, OCI_INDEX);
    upstream.proxy.reset();
  }, { timeout: 240_000 });
  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnostics = () => `--- upstream requests ---\n${upstream.proxy.describe()}\n--- longshore log ---\n${longshore.recentLog()}`;

  it('discovers the signature with the referrers API (the upstream has none: the tag schema answers), filtered by artifactType', async () => {
    const res = await fetch(`${longshore.url}/v2/library/ocitest/referrers/${subject}?artifactType=${encodeURIComponent(SIGNATURE)}`);
    const text = await res.text();
    assert.equal(res.status, 200, `${text}\n${diagnostics()}`);
    assert.equal(res.headers.get('content-type'), OCI_INDEX);
    assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
    const index = JSON.parse(text) as { manifests: Array<{ digest: string; artifactType?: string }> };
    assert.deepEqual(index.manifests.map((m) => [m.digest, m.artifactType]), [[signature, SIGNATURE]], diagnostics());
    const other = await fetch(`${longshore.url}/v2/library/ocitest/referrers/${subject}?artifactType=application%2Fexample`);
    assert.deepEqual((await other.json() as { manifests: unknown[] }).manifests, []);
  });

  it('fetches the signature, its payload and its tags through the mirror', async () => {
    const manifest = await fetch(`${longshore.url}/v2/library/ocitest/manifests/${signature}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(manifest.status, 200, diagnostics());
    assert.deepEqual(Buffer.from(await manifest.arrayBuffer()), signatureBody);
    const blob = await fetch(`${longshore.url}/v2/library/ocitest/blobs/${sha256(payload)}`);
    assert.equal(blob.status, 200, diagnostics());
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), payload);
    const hex = subject.slice('sha256:'.length);
    const sig = await fetch(`${longshore.url}/v2/library/ocitest/manifests/sha256-${hex}.sig`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(sig.status, 200, diagnostics());
    assert.equal(sig.headers.get('docker-content-digest'), signature);
    const schema = await fetch(`${longshore.url}/v2/library/ocitest/manifests/sha256-${hex}`, { headers: { accept: OCI_INDEX } });
    assert.equal(schema.status, 200, diagnostics());
    assert.deepEqual((await schema.json() as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [signature]);
  });

  it('serves the cached referrers list while the upstream is down', async () => {
    upstream.proxy.fault = { kind: 'unavailable' };
    try {
      const res = await fetch(`${longshore.url}/v2/library/ocitest/referrers/${subject}`);
      const text = await res.text();
      assert.equal(res.status, 200, `${text}\n${diagnostics()}`);
      assert.deepEqual((JSON.parse(text) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [signature]);
      assert.ok(upstream.proxy.requests.some((r) => r.status === 503), 'the upstream was asked and failed');
      await longshore.logSettled();
      assert.ok(longshore.records.some((r) => r.msg === 'serving stale referrers'), diagnostics());
    } finally {
      upstream.proxy.fault = null;
    }
  });

  function cli(server: Longshore, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), ...args, '--config', join(server.dir, 'config.json')],
        { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 }, (err, stdout, stderr) => {
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
        });
    });
  }

  it('export --with-referrers carries the signature; skopeo reads the bundle; an offline mirror imports it and serves the referrers, the .sig tag and the signature with no upstream', { timeout: 300_000 }, async () => {
    const image = upstream.ocitest;
    const file = join(work, 'signed.tar');
    const exported = await cli(longshore, 'export', '--output', file, '--platform', 'linux/amd64', '--with-referrers', '--json', `docker.io/${image.repository}:${image.tag}`);
    assert.equal(exported.code, 0, `${exported.stderr}\n${exported.stdout}\n${diagnostics()}`);
    const line = exported.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'image')!;
    assert.ok(Number(line.referrers) >= 1, JSON.stringify(line));

    // The referrers entries of index.json do not get in the way of a name lookup.
    const skopeo = new Skopeo(work);
    const ref = `oci-archive:${file}:docker.io/${image.repository}:${image.tag}`;
    const raw = await skopeo.run(['inspect', '--raw', ref]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.deepEqual(raw.stdout, image.index.bytes, 'the index, byte for byte');
    const copy = await skopeo.run(['copy', '--override-arch', 'amd64', '--override-os', 'linux', ref, `dir:${join(work, 'copy')}`]);
    assert.equal(copy.code, 0, copy.stderr);
    for (const blob of [platformOf(image, 'amd64').config, ...platformOf(image, 'amd64').layers]) assert.deepEqual(readFileSync(join(work, 'copy', blob.digest.slice(7))), blob.bytes);

    const imported = await cli(gapped, 'import', '--json', file);
    assert.equal(imported.code, 0, `${imported.stderr}\n${imported.stdout}\n${gapped.recentLog()}`);
    const filtered = await fetch(`${gapped.url}/v2/library/ocitest/referrers/${subject}?artifactType=${encodeURIComponent(SIGNATURE)}`);
    const text = await filtered.text();
    assert.equal(filtered.status, 200, `${text}\n${gapped.recentLog()}`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual((JSON.parse(text) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [signature]);
    const all = await fetch(`${gapped.url}/v2/library/ocitest/referrers/${subject}`);
    assert.deepEqual((await all.json() as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), [signature]);
    const manifest = await fetch(`${gapped.url}/v2/library/ocitest/manifests/${signature}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(manifest.status, 200);
    assert.deepEqual(Buffer.from(await manifest.arrayBuffer()), signatureBody);
    const blob = await fetch(`${gapped.url}/v2/library/ocitest/blobs/${sha256(payload)}`);
    assert.equal(blob.status, 200);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), payload);
    const sig = await fetch(`${gapped.url}/v2/library/ocitest/manifests/sha256-${subject.slice('sha256:'.length)}.sig`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(sig.status, 200, gapped.recentLog());
    assert.equal(sig.headers.get('docker-content-digest'), signature);
    await sig.arrayBuffer();
    // Nothing was ever asked of an upstream.
    const metrics = await (await fetch(`${gapped.url}/metrics`)).text();
    assert.doesNotMatch(metrics, /^longshore_upstream_requests_total\{/m);
  });
});
