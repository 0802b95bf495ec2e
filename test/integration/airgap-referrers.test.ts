// `warm --with-referrers` and `export --with-referrers` carry an image's signatures and attestations
// across an air gap: the referrers of its root and chosen platform manifests (through the mirror's own
// referrers path: the upstream's API, or its tag schema), each referrer with its blobs, and cosign's
// `sha256-<hex>.sig` tags. `import` rebuilds what an offline mirror needs to answer the referrers API and
// those tags with no upstream at all. The CLI runs as a child process against serving mirrors, as an
// operator runs it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TAR_END, readTar, scanTar, tarHeader, tarPadding } from '../../src/jobs/bundle/tar.js';
import { FakeRegistry, sha256 } from '../support/fake-registry.js';
import { ALL_MANIFEST_TYPES, get } from '../support/http.js';
import { indexDescriptor, publishArtifact, publishImage, type Descriptor, type PublishedArtifact, type PublishedImage } from '../support/images.js';
import { bundleBlobs, cli, onDisk, reported, serving, servingOffline, startAirGap, type AirGap, type ServingMirror } from '../support/admin-cli.js';
import type { TestMirror } from '../support/mirror.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = Buffer.from('{}');
const SIGNATURE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const SBOM = 'application/spdx+json';
const SUBJECT = 'org.opencontainers.image.referrer.subject';
const REF_NAME = 'org.opencontainers.image.ref.name';

interface Index { manifests: Array<{ digest: string; mediaType: string; size: number; artifactType?: string; annotations?: Record<string, string> }> }

async function upstreamRequests(mirror: TestMirror): Promise<string[]> {
  const text = (await get(`${mirror.url}/metrics`)).body.toString();
  return text.split('\n').filter((l) => l.startsWith('longshore_upstream_requests_total{'));
}

async function bundleIndex(file: string): Promise<Index> {
  const handle = await open(file, 'r');
  try {
    return JSON.parse((await scanTar(handle, new Set(['index.json']))).bodies.get('index.json')!.toString()) as Index;
  } finally {
    await handle.close();
  }
}

/** Copies a bundle, entry by entry: `edit` returns the new body, or null to leave the entry out. */
async function rewrite(from: string, to: string, edit: (name: string, body: Buffer) => Buffer | null): Promise<void> {
  const parts: Buffer[] = [];
  for await (const entry of readTar(createReadStream(from))) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry.body()) chunks.push(Buffer.from(chunk));
    const body = edit(entry.name, Buffer.concat(chunks));
    if (body === null) continue;
    parts.push(tarHeader(entry.name, body.length), body, tarPadding(body.length));
  }
  parts.push(TAR_END);
  await writeFile(to, Buffer.concat(parts));
}

/** An artifact about `subject` with 3000 bytes of payload: enough to find it in a bundle and flip a byte well inside it. */
function publishReferrer(fake: FakeRegistry, repository: string, subject: Descriptor, artifactType: string, tag?: string): PublishedArtifact {
  return publishArtifact(fake, repository, subject, artifactType, { tag, payloadSize: 3000 });
}

function platformOf(fake: FakeRegistry, image: PublishedImage, platform: string): Descriptor {
  const digest = image.platforms[platform]!;
  return { digest, size: fake.manifests.get(digest)!.body.length, mediaType: OCI_MANIFEST };
}

const hexOf = (digest: string) => digest.slice('sha256:'.length);

describe('warm and export --with-referrers, import into an offline mirror (upstream with the referrers API)', () => {
  let fake: FakeRegistry;
  let gap: AirGap;
  let connected: ServingMirror;
  let gapped: ServingMirror;
  let work: string;
  let image: PublishedImage;
  let plain: PublishedImage;
  let signature: PublishedArtifact;
  let sbom: PublishedArtifact;
  let platformSignature: PublishedArtifact;
  let cosignTag: PublishedArtifact;
  let bundle: string;

  before(async () => {
    fake = await FakeRegistry.start({ isolate: true });
    fake.referrersApi = true;
    image = publishImage(fake, 'library/signed', '1.0', 'oci', 20_000);
    plain = publishImage(fake, 'library/plain', '1.0', 'oci', 20_000);
    signature = publishReferrer(fake, 'library/signed', indexDescriptor(fake, image), SIGNATURE);
    sbom = publishReferrer(fake, 'library/signed', indexDescriptor(fake, image), SBOM);
    platformSignature = publishReferrer(fake, 'library/signed', platformOf(fake, image, 'linux/amd64'), SIGNATURE);
    // cosign without the referrers API: a manifest with no subject, under the subject's `.sig` tag.
    const config = fake.addBlob(EMPTY);
    const payload = randomBytes(500);
    const layer = fake.addBlob(payload);
    fake.grant('library/signed', config);
    fake.grant('library/signed', layer);
    cosignTag = {
      digest: fake.addManifest('library/signed', OCI_MANIFEST, {
        schemaVersion: 2, mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: EMPTY.length },
        layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: layer, size: payload.length }],
      }, `sha256-${hexOf(image.index)}.sig`),
      layer,
      payload,
    };
    // tagTTL 0: each warm asks for the referrers lists again, as it would once tagTTL has passed.
    gap = await startAirGap({ url: fake.registryUrl, tagTTL: 0 }, 'longshore-referrers-bundles-');
    ({ connected, gapped, work } = gap);
    bundle = join(work, 'signed.tar');
  });
  after(async () => {
    await gap.close();
    await fake.close();
  });

  it('warm without the flag asks no referrers; with it, the referrers of the index and the chosen platform manifest, each referrer with its blobs, and the .sig tag', async () => {
    const plainWarm = await cli(connected.configFile, 'warm', '--platform', 'linux/amd64', '--json', 'plain:1.0');
    assert.equal(plainWarm.code, 0, plainWarm.stderr + plainWarm.stdout);
    assert.equal(fake.count({ host: 'registry', path: /\/referrers\// }), 0, 'referrers are fetched only when asked for');
    assert.equal(plainWarm.lines[0]!.referrers, undefined);

    fake.reset();
    const result = await cli(connected.configFile, 'warm', '--platform', 'linux/amd64', '--with-referrers', '--json', 'signed:1.0');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const line = result.lines.find((l) => l.event === 'image')!;
    assert.equal(line.referrers, 4, 'signature, SBOM, the platform signature and the .sig tag\'s manifest');
    assert.deepEqual(line.referrerTags, [`sha256-${hexOf(image.index)}.sig`]);
    assert.equal(result.lines.at(-1)!.referrers, 4);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: `/v2/library/signed/referrers/${image.index}` }), 1);
    assert.equal(fake.count({ host: 'registry', method: 'GET', path: `/v2/library/signed/referrers/${image.platforms['linux/amd64']}` }), 1);
    assert.equal(fake.count({ host: 'registry', path: `/v2/library/signed/referrers/${image.platforms['linux/arm64']}` }), 0, 'platforms not chosen are not asked about');
    for (const layer of [signature.layer, sbom.layer, platformSignature.layer, cosignTag.layer]) {
      assert.equal(fake.count({ host: 'registry', method: 'GET', path: `/v2/library/signed/blobs/${layer}` }), 1, `referrer blob ${layer} fetched once`);
    }
    // Now cached: the connected mirror serves them without asking again.
    fake.reset();
    assert.equal((await get(`${connected.mirror.url}/v2/signed/blobs/${signature.layer}`)).status, 200);
    assert.equal(fake.count({ host: 'registry', path: /\/blobs\// }), 0);
  });

  it('export --with-referrers: referrers lists as index.json entries with referrer.subject and no ref.name, the .sig tag by its full name', async () => {
    const result = await cli(connected.configFile, 'export', '--output', bundle, '--platform', 'linux/amd64', '--with-referrers', '--json', 'signed:1.0', 'plain:1.0');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const index = await bundleIndex(bundle);
    const named = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== undefined).map((m) => m.annotations![REF_NAME]);
    assert.deepEqual(named, ['docker.io/library/signed:1.0', 'docker.io/library/plain:1.0', `docker.io/library/signed:sha256-${hexOf(image.index)}.sig`]);
    const lists = index.manifests.filter((m) => m.annotations?.[SUBJECT] !== undefined);
    assert.deepEqual(lists.map((m) => `${m.annotations!['io.longshore.referrers.repository']}@${m.annotations![SUBJECT]}`).sort(), [
      `docker.io/library/plain@${plain.index}`, `docker.io/library/plain@${plain.platforms['linux/amd64']}`,
      `docker.io/library/signed@${image.index}`, `docker.io/library/signed@${image.platforms['linux/amd64']}`,
    ].sort());
    for (const list of lists) {
      assert.equal(list.mediaType, OCI_INDEX);
      assert.equal(list.annotations![REF_NAME], undefined, 'never taken for an image by name');
    }
    const blobs = await bundleBlobs(bundle);
    for (const digest of [signature.digest, signature.layer, sbom.digest, sbom.layer, platformSignature.digest, platformSignature.layer, cosignTag.digest, cosignTag.layer, ...lists.map((l) => l.digest)]) {
      assert.ok(blobs.includes(digest), `the bundle carries ${digest}`);
    }
  });

  it('an offline mirror imports it and answers the referrers API (filtered too), the .sig tag and every referrer, asking no upstream; importing twice changes nothing', async () => {
    const before = await cli(gapped.configFile, 'import', '--json', bundle);
    assert.equal(before.code, 0, before.stderr + before.stdout);
    const events = before.lines.filter((l) => l.event === 'referrers');
    assert.equal(events.length, 4);
    assert.ok(events.every((e) => e.error === undefined), JSON.stringify(events));
    assert.equal(before.lines.at(-1)!.referrers, 4);

    const url = gapped.mirror.url;
    const all = await get(`${url}/v2/signed/referrers/${image.index}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers['content-type'], OCI_INDEX);
    assert.deepEqual(all.json<Index>().manifests.map((m) => m.digest).sort(), [signature.digest, sbom.digest].sort());
    const filtered = await get(`${url}/v2/signed/referrers/${image.index}?artifactType=${encodeURIComponent(SBOM)}`);
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual(filtered.json<Index>().manifests.map((m) => m.digest), [sbom.digest]);
    const platform = await get(`${url}/v2/signed/referrers/${image.platforms['linux/amd64']}`);
    assert.deepEqual(platform.json<Index>().manifests.map((m) => m.digest), [platformSignature.digest]);
    const none = await get(`${url}/v2/plain/referrers/${plain.index}`);
    assert.equal(none.status, 200, 'an empty list is carried too: "no referrers", not "not cached"');
    assert.deepEqual(none.json<Index>().manifests, []);
    const notCarried = await get(`${url}/v2/signed/referrers/${image.platforms['linux/arm64']}`);
    assert.equal(notCarried.status, 404);

    for (const artifact of [signature, sbom, platformSignature]) {
      const manifest = await get(`${url}/v2/signed/manifests/${artifact.digest}`, { accept: OCI_MANIFEST });
      assert.equal(manifest.status, 200);
      assert.equal(sha256(manifest.body), artifact.digest);
      assert.deepEqual((await get(`${url}/v2/signed/blobs/${artifact.layer}`)).body, artifact.payload);
    }
    const sig = await get(`${url}/v2/signed/manifests/sha256-${hexOf(image.index)}.sig`, { accept: ALL_MANIFEST_TYPES });
    assert.equal(sig.status, 200);
    assert.equal(sig.headers['docker-content-digest'], cosignTag.digest);
    assert.deepEqual((await get(`${url}/v2/signed/blobs/${cosignTag.layer}`)).body, cosignTag.payload);
    // Repository isolation holds for referrers too: plain holds none of signed's.
    assert.equal((await get(`${url}/v2/plain/manifests/${signature.digest}`, { accept: OCI_MANIFEST })).status, 404);
    assert.equal((await get(`${url}/v2/plain/referrers/${image.index}`)).status, 404);
    assert.deepEqual(await upstreamRequests(gapped.mirror), [], 'no upstream was asked');

    const totals = await reported(gapped.mirror);
    assert.deepEqual(totals, onDisk(gapped.mirror.dataDir));
    const again = await cli(gapped.configFile, 'import', '--json', bundle);
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.deepEqual(await reported(gapped.mirror), totals, 'importing twice changes nothing');
    assert.deepEqual((await get(`${url}/v2/signed/referrers/${image.index}`)).json<Index>().manifests.map((m) => m.digest).sort(), [signature.digest, sbom.digest].sort());
  });

  it('an incremental bundle --since the first carries only a new signature and the changed list, and imports on top of it', async () => {
    const added = publishReferrer(fake, 'library/signed', indexDescriptor(fake, image), 'application/vnd.in-toto+json');
    const delta = join(work, 'delta.tar');
    const result = await cli(connected.configFile, 'export', '--output', delta, '--since', bundle, '--platform', 'linux/amd64', '--with-referrers', '--json', 'signed:1.0');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const lists = (await bundleIndex(delta)).manifests.filter((m) => m.annotations?.[SUBJECT] === image.index);
    assert.equal(lists.length, 1);
    // The new signature (its config, `{}`, was carried before), and the subject's new list; the platform's list is unchanged.
    assert.deepEqual(await bundleBlobs(delta), [added.digest, added.layer, lists[0]!.digest].sort());
    const imported = await cli(gapped.configFile, 'import', '--json', delta);
    assert.equal(imported.code, 0, imported.stderr + imported.stdout);
    const listed = (await get(`${gapped.mirror.url}/v2/signed/referrers/${image.index}`)).json<Index>().manifests.map((m) => m.digest).sort();
    assert.deepEqual(listed, [signature.digest, sbom.digest, added.digest].sort());
    assert.deepEqual(await upstreamRequests(gapped.mirror), []);
  });

  it('a bundle that does not name the list\'s repository (image-spec PR #1171 as other tools write it) gives the list to the images holding its subject', async () => {
    const { mirror, configFile, close } = await servingOffline();
    try {
      const foreign = join(work, 'foreign.tar');
      await rewrite(bundle, foreign, (name, body) => {
        if (name !== 'index.json') return body;
        const index = JSON.parse(body.toString()) as Index;
        for (const m of index.manifests) delete m.annotations?.['io.longshore.referrers.repository'];
        return Buffer.from(JSON.stringify(index));
      });
      const imported = await cli(configFile, 'import', '--json', foreign);
      assert.equal(imported.code, 0, imported.stderr + imported.stdout);
      assert.deepEqual(imported.lines.filter((l) => l.event === 'referrers').map((l) => l.repository).sort(),
        ['docker.io/library/plain', 'docker.io/library/plain', 'docker.io/library/signed', 'docker.io/library/signed']);
      const listed = await get(`${mirror.url}/v2/signed/referrers/${image.index}`);
      assert.deepEqual(listed.json<Index>().manifests.map((m) => m.digest).sort(), [signature.digest, sbom.digest].sort());
      assert.equal((await get(`${mirror.url}/v2/plain/referrers/${image.index}`)).status, 404, 'not given to a repository without the subject');
    } finally {
      await close();
    }
  });

  it('refuses a referrers list whose referrer the bundle lacks, leaving the image imported and the list not half there', async () => {
    const { mirror, configFile, close } = await servingOffline();
    try {
      const lacking = join(work, 'lacking.tar');
      await rewrite(bundle, lacking, (name, body) => (name === `blobs/sha256/${hexOf(sbom.digest)}` ? null : body));
      const imported = await cli(configFile, 'import', '--json', lacking);
      assert.equal(imported.code, 1, imported.stderr + imported.stdout);
      const refused = imported.lines.filter((l) => l.event === 'referrers' && l.error !== undefined);
      assert.equal(refused.length, 1, JSON.stringify(imported.lines));
      assert.equal(refused[0]!.subject, image.index);
      assert.match((refused[0]!.error as { message: string }).message, new RegExp(`blobs/sha256/${hexOf(sbom.digest)} is missing`));
      assert.equal((await get(`${mirror.url}/v2/signed/manifests/1.0`, { accept: ALL_MANIFEST_TYPES })).status, 200, 'the image itself is whole');
      assert.equal((await get(`${mirror.url}/v2/signed/referrers/${image.index}`)).status, 404);
      assert.equal((await get(`${mirror.url}/v2/signed/manifests/${signature.digest}`, { accept: OCI_MANIFEST })).status, 404, 'nothing of the refused list is served');
      assert.equal((await get(`${mirror.url}/v2/signed/referrers/${image.platforms['linux/amd64']}`)).status, 200, 'the other lists are imported');
      assert.deepEqual(await reported(mirror), onDisk(mirror.dataDir));
    } finally {
      await close();
    }
  });

  it('refuses a bundle whose referrer blob has one flipped byte, naming the entry, and serves nothing of it', async () => {
    const other = publishImage(fake, 'library/other', '1', 'oci', 10_000);
    const sig = publishReferrer(fake, 'library/other', indexDescriptor(fake, other), SIGNATURE);
    const file = join(work, 'corrupt.tar');
    const exported = await cli(connected.configFile, 'export', '--output', file, '--platform', 'linux/amd64', '--with-referrers', 'other:1');
    assert.equal(exported.code, 0, exported.stderr + exported.stdout);
    const bytes = await readFile(file);
    const at = bytes.indexOf(sig.payload);
    assert.ok(at > 0);
    bytes[at + 100] = bytes[at + 100]! ^ 0x01;
    await writeFile(file, bytes);
    const result = await cli(gapped.configFile, 'import', '--json', file);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`bundle entry blobs/sha256/${hexOf(sig.layer)} is damaged: content does not match digest`));
    assert.equal((await get(`${gapped.mirror.url}/v2/other/referrers/${other.index}`)).status, 404);
    assert.equal((await get(`${gapped.mirror.url}/v2/other/manifests/${sig.digest}`, { accept: OCI_MANIFEST })).status, 404);
    assert.deepEqual(await reported(gapped.mirror), onDisk(gapped.mirror.dataDir));
  });
});

describe('warm and export --with-referrers from an upstream without the referrers API (tag schema)', () => {
  let fake: FakeRegistry;
  let connected: ServingMirror;
  let work: string;

  before(async () => {
    fake = await FakeRegistry.start();
    connected = await serving({ upstreams: { 'docker.io': { url: fake.registryUrl } } });
    work = await mkdtemp(join(tmpdir(), 'longshore-referrers-schema-'));
  });
  after(async () => {
    await connected.close();
    await rm(work, { recursive: true, force: true });
    await fake.close();
  });

  it('finds referrers through the <alg>-<hex> tag, carries that tag and the .sig tag, and an offline mirror answers both ways', async () => {
    const image = publishImage(fake, 'library/app', '2.0', 'oci', 10_000);
    const schemaTag = `sha256-${hexOf(image.index)}`;
    const signature = publishReferrer(fake, 'library/app', indexDescriptor(fake, image), SIGNATURE, `${schemaTag}.sig`);
    const attestation = publishReferrer(fake, 'library/app', indexDescriptor(fake, image), 'application/vnd.in-toto+json');
    const size = (d: string) => fake.manifests.get(d)!.body.length;
    fake.addManifest('library/app', OCI_INDEX, {
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: signature.digest, size: size(signature.digest), artifactType: SIGNATURE },
        { mediaType: OCI_MANIFEST, digest: attestation.digest, size: size(attestation.digest), artifactType: 'application/vnd.in-toto+json' },
      ],
    }, schemaTag);

    const file = join(work, 'app.tar');
    const result = await cli(connected.configFile, 'export', '--output', file, '--platform', 'linux/amd64', '--with-referrers', '--json', 'app:2.0');
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.equal(fake.count({ host: 'registry', path: `/v2/library/app/referrers/${image.index}`, status: 404 }), 1, 'the API was tried, then the tag schema');
    const index = await bundleIndex(file);
    assert.deepEqual(index.manifests.filter((m) => m.annotations?.[REF_NAME] !== undefined).map((m) => m.annotations![REF_NAME]).sort(),
      ['docker.io/library/app:2.0', `docker.io/library/app:${schemaTag}`, `docker.io/library/app:${schemaTag}.sig`].sort());
    const blobs = await bundleBlobs(file);
    for (const digest of [signature.digest, signature.layer, attestation.digest, attestation.layer]) assert.ok(blobs.includes(digest), digest);

    const { mirror: gapped, configFile, close } = await servingOffline();
    try {
      const imported = await cli(configFile, 'import', '--json', file);
      assert.equal(imported.code, 0, imported.stderr + imported.stdout);
      const listed = await get(`${gapped.url}/v2/app/referrers/${image.index}?artifactType=${encodeURIComponent(SIGNATURE)}`);
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.json<Index>().manifests.map((m) => m.digest), [signature.digest]);
      const everything = await get(`${gapped.url}/v2/app/referrers/${image.index}`);
      assert.deepEqual(everything.json<Index>().manifests.map((m) => m.digest).sort(), [signature.digest, attestation.digest].sort());
      const sig = await get(`${gapped.url}/v2/app/manifests/${schemaTag}.sig`, { accept: OCI_MANIFEST });
      assert.equal(sig.headers['docker-content-digest'], signature.digest);
      const schema = await get(`${gapped.url}/v2/app/manifests/${schemaTag}`, { accept: OCI_INDEX });
      assert.equal(schema.status, 200);
      assert.deepEqual(schema.json<Index>().manifests.map((m) => m.digest), [signature.digest, attestation.digest]);
      assert.deepEqual((await get(`${gapped.url}/v2/app/blobs/${attestation.layer}`)).body, attestation.payload);
      assert.deepEqual(await upstreamRequests(gapped), []);
    } finally {
      await close();
    }
  });
});
