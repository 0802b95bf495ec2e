// Pushes a TestImage to a registry with `skopeo copy --all` from a `dir:` directory, then reads every
// manifest and blob back to prove the registry holds the exact bytes: `--preserve-digests` makes
// skopeo fail rather than re-serialize a manifest.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { allBlobs, sha256Digest, type Blob, type TestImage } from '../images.js';
import { writeSkopeoDir } from './skopeo-dir.js';
import { registryRequest, type Credentials } from './registry-client.js';

const run = promisify(execFile);

export interface RegistryTarget {
  /** `127.0.0.1:PORT` */
  host: string;
  /** `http://127.0.0.1:PORT` */
  url: string;
}

export async function publishImage(image: TestImage, registry: RegistryTarget, credentials: Credentials): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'longshore-layout-'));
  try {
    writeSkopeoDir(image, join(dir, 'image'));
    await run('skopeo', [
      // No /etc/containers/policy.json is needed or consulted: the rig made the source itself.
      '--insecure-policy',
      'copy', '--all', '--preserve-digests', '--quiet',
      '--dest-tls-verify=false',
      '--dest-creds', `${credentials.username}:${credentials.password}`,
      `dir:${join(dir, 'image')}`,
      `docker://${registry.host}/${image.repository}:${image.tag}`,
    ], { env: { ...process.env, TMPDIR: dir } });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`skopeo could not push ${image.repository}:${image.tag}: ${(err as Error).message}\n${stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await verifyPublished(image, registry, credentials);
}

/** Throws unless the registry serves the index by tag and every manifest and blob as built. */
export async function verifyPublished(image: TestImage, registry: RegistryTarget, credentials: Credentials): Promise<void> {
  const repo = `${registry.url}/v2/${image.repository}`;
  await expectManifest(`${repo}/manifests/${image.tag}`, image.index, credentials);
  for (const platform of image.platforms) {
    await expectManifest(`${repo}/manifests/${platform.manifest.digest}`, platform.manifest, credentials);
  }
  const manifestDigests = new Set([image.index.digest, ...image.platforms.map((p) => p.manifest.digest)]);
  for (const blob of allBlobs(image).filter((b) => !manifestDigests.has(b.digest))) {
    const res = await registryRequest(`${repo}/blobs/${blob.digest}`, { method: 'HEAD', credentials });
    const length = Number(res.headers.get('content-length'));
    if (res.status !== 200 || length !== blob.size) {
      throw new Error(`registry has blob ${blob.digest} as ${res.status} with ${length} bytes, expected ${blob.size}`);
    }
  }
}

async function expectManifest(url: string, expected: Blob, credentials: Credentials): Promise<void> {
  const res = await registryRequest(url, { accept: [expected.mediaType], credentials });
  const served = {
    status: res.status,
    mediaType: res.headers.get('content-type'),
    headerDigest: res.headers.get('docker-content-digest'),
    bodyDigest: sha256Digest(res.body),
  };
  const wanted = { status: 200, mediaType: expected.mediaType, headerDigest: expected.digest, bodyDigest: expected.digest };
  if (JSON.stringify(served) !== JSON.stringify(wanted)) {
    throw new Error(`registry serves ${url} as ${JSON.stringify(served)}, expected ${JSON.stringify(wanted)}`);
  }
}
