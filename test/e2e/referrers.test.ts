// Signatures through the mirror with a real upstream: Debian's docker-registry (distribution 2.8), which
// has no referrers API. A signature-shaped artifact (an OCI manifest with `subject` and an
// `artifactType`) is pushed there, once under cosign's `sha256-<hex>.sig` tag and once listed in the
// referrers tag schema's index (`sha256-<hex>`), as clients do for such a registry. Through Longshore it
// is then discovered with the referrers API and with the tag schema, fetched by digest, and the cached
// referrers list is still served while the upstream is down.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, it } from 'node:test';
import { Longshore } from '../support/e2e/longshore.js';
import { parseBearerChallenge, type Credentials } from '../support/e2e/registry-client.js';
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
});
