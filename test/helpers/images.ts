// Publishes a small multi-arch image to a FakeRegistry: an index of two platforms whose manifests share
// one layer, in Docker or OCI media types. Layer bytes are random, so every call makes new digests.
import { randomBytes } from 'node:crypto';
import { MediaType } from '../../src/registry/media-types.js';
import type { FakeRegistry } from './fake-registry.js';

export interface PublishedImage {
  repository: string;
  tag: string;
  index: string;
  indexType: string;
  /** platform ("linux/amd64") → manifest digest */
  platforms: Record<string, string>;
  manifestType: string;
  /** Every blob digest (configs and layers) → its bytes */
  blobs: Map<string, Buffer>;
}

export function publishImage(fake: FakeRegistry, repository: string, tag: string, flavour: 'docker' | 'oci' = 'docker', layerSize = 64 * 1024): PublishedImage {
  const docker = flavour === 'docker';
  const indexType = docker ? MediaType.DockerManifestList : MediaType.OciIndex;
  const manifestType = docker ? MediaType.DockerManifest : MediaType.OciManifest;
  const layerType = docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip';
  const configType = docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json';
  const blobs = new Map<string, Buffer>();
  const blob = (content: Buffer) => {
    const digest = fake.addBlob(content);
    fake.grant(repository, digest);
    blobs.set(digest, content);
    return { digest, size: content.length };
  };
  const shared = blob(randomBytes(layerSize));
  const platforms: Record<string, string> = {};
  const entries = [];
  for (const architecture of ['amd64', 'arm64']) {
    const own = blob(randomBytes(layerSize));
    const config = blob(Buffer.from(JSON.stringify({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })));
    const manifest = {
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: configType, ...config },
      layers: [{ mediaType: layerType, ...shared }, { mediaType: layerType, ...own }],
    };
    const body = Buffer.from(JSON.stringify(manifest));
    const digest = fake.addManifest(repository, manifestType, body);
    platforms[`linux/${architecture}`] = digest;
    entries.push({ mediaType: manifestType, digest, size: body.length, platform: { architecture, os: 'linux' } });
  }
  const index = fake.addManifest(repository, indexType, { schemaVersion: 2, mediaType: indexType, manifests: entries }, tag);
  return { repository, tag, index, indexType, platforms, manifestType, blobs };
}
