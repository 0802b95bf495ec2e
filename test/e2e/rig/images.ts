// Builds test images in memory: real gzipped tar layers of incompressible random files, image
// configs whose diff_ids are the digests of the uncompressed tars, one manifest per platform and an
// index over them. buildMultiArchImage makes linux/amd64 + linux/arm64 sharing their first layer;
// buildImageFamily makes several tags sharing base layers. Every build draws fresh random content,
// so two builds never share a blob by accident.
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mediaTypesOf, type ImageFormat } from './media-types.js';
import { tarArchive } from './tar.js';

export interface Blob {
  digest: string;
  size: number;
  mediaType: string;
  bytes: Buffer;
}

export interface Platform {
  architecture: string;
  os: string;
}

export interface PlatformImage {
  platform: Platform;
  manifest: Blob;
  config: Blob;
  layers: Blob[];
}

export interface TestImage {
  /** Repository path at the registry, e.g. `library/alpine`. */
  repository: string;
  tag: string;
  format: ImageFormat;
  index: Blob;
  platforms: PlatformImage[];
}

export interface ImageSpec {
  repository: string;
  tag: string;
  format: ImageFormat;
}

const CREATED = '2024-01-01T00:00:00Z';
const KiB = 1024;

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function blobOf(bytes: Buffer, mediaType: string): Blob {
  return { digest: sha256Digest(bytes), size: bytes.length, mediaType, bytes };
}

/** Descriptor as it appears inside a manifest or index. */
function descriptor(blob: Blob): { mediaType: string; size: number; digest: string } {
  return { mediaType: blob.mediaType, size: blob.size, digest: blob.digest };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 3));
}

interface Layer {
  compressed: Blob;
  diffId: string;
  label: string;
}

function randomLayer(label: string, fileSizes: readonly number[], mediaType: string): Layer {
  const dir = `longshore-e2e/${label}/`;
  const tar = tarArchive([
    { path: 'longshore-e2e/' },
    { path: dir },
    ...fileSizes.map((size, i) => ({ path: `${dir}payload-${i}.bin`, content: randomBytes(size) })),
    { path: `${dir}README`, content: Buffer.from(`layer ${label}\n`) },
  ]);
  return { compressed: blobOf(gzipSync(tar), mediaType), diffId: sha256Digest(tar), label };
}

function platformImage(spec: ImageSpec, platform: Platform, layers: readonly Layer[]): PlatformImage {
  const types = mediaTypesOf(spec.format);
  const config = blobOf(json({
    architecture: platform.architecture,
    os: platform.os,
    created: CREATED,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      Labels: { 'org.longshore.e2e.image': `${spec.repository}:${spec.tag}` },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created: CREATED, created_by: `longshore e2e layer ${l.label}` })),
  }), types.config);
  const manifest = blobOf(json({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: descriptor(config),
    layers: layers.map((l) => descriptor(l.compressed)),
  }), types.manifest);
  return { platform, manifest, config, layers: layers.map((l) => l.compressed) };
}

export function buildMultiArchImage(spec: ImageSpec): TestImage {
  const { layer } = mediaTypesOf(spec.format);
  const shared = randomLayer('base', [768 * KiB, 256 * KiB], layer);
  const amd64 = [shared, randomLayer('amd64-app', [1536 * KiB], layer), randomLayer('amd64-extra', [512 * KiB], layer)];
  const arm64 = [shared, randomLayer('arm64-app', [1024 * KiB], layer)];
  const platforms = [
    platformImage(spec, { architecture: 'amd64', os: 'linux' }, amd64),
    platformImage(spec, { architecture: 'arm64', os: 'linux' }, arm64),
  ];
  return { ...spec, index: indexOf(spec.format, platforms), platforms };
}

function indexOf(format: ImageFormat, platforms: readonly PlatformImage[]): Blob {
  const types = mediaTypesOf(format);
  return blobOf(json({
    schemaVersion: 2,
    mediaType: types.index,
    manifests: platforms.map((p) => ({ ...descriptor(p.manifest), platform: p.platform })),
  }), types.index);
}

/**
 * A linux/amd64 image whose first layer is `base`'s shared first layer, byte for byte (the same base
 * image published on two registries), plus a layer of its own. `spec.format` must be `base`'s.
 */
export function buildImageOnBase(spec: ImageSpec, base: TestImage): TestImage {
  if (spec.format !== base.format) throw new Error('buildImageOnBase: the image must have the format of its base');
  const basePlatform = platformOf(base, 'amd64');
  const baseConfig = JSON.parse(basePlatform.config.bytes.toString('utf8')) as { rootfs: { diff_ids: string[] } };
  const shared: Layer = { compressed: basePlatform.layers[0]!, diffId: baseConfig.rootfs.diff_ids[0]!, label: 'base' };
  const own = randomLayer(`${spec.tag}-own`, [512 * KiB], mediaTypesOf(spec.format).layer);
  const platforms = [platformImage(spec, { architecture: 'amd64', os: 'linux' }, [shared, own])];
  return { ...spec, index: indexOf(spec.format, platforms), platforms };
}

export interface FamilySpec {
  repository: string;
  /** One image per tag. */
  tags: readonly string[];
  format: ImageFormat;
}

/**
 * Images of one repository, one per tag, as a base image and the apps built on it would be: each a
 * linux/amd64-only index over four layers, the first two of which (the base) every tag shares; the
 * other two and the config are the tag's own.
 */
export function buildImageFamily(spec: FamilySpec): TestImage[] {
  const { layer } = mediaTypesOf(spec.format);
  const base = [randomLayer('base-os', [768 * KiB, 256 * KiB], layer), randomLayer('base-runtime', [512 * KiB], layer)];
  return spec.tags.map((tag) => {
    const image = { repository: spec.repository, tag, format: spec.format };
    const own = [randomLayer(`app-${tag}`, [384 * KiB], layer), randomLayer(`app-${tag}-assets`, [128 * KiB], layer)];
    const platforms = [platformImage(image, { architecture: 'amd64', os: 'linux' }, [...base, ...own])];
    return { ...image, index: indexOf(spec.format, platforms), platforms };
  });
}

/** The image for one platform; throws if the index has none. */
export function platformOf(image: TestImage, architecture: string): PlatformImage {
  const found = image.platforms.find((p) => p.platform.architecture === architecture);
  if (found === undefined) throw new Error(`${image.repository}:${image.tag} has no ${architecture} image`);
  return found;
}

/** Every blob the index refers to, manifests included, each digest once. */
export function allBlobs(image: TestImage): Blob[] {
  const byDigest = new Map<string, Blob>();
  for (const blob of [image.index, ...image.platforms.flatMap((p) => [p.manifest, p.config, ...p.layers])]) {
    byDigest.set(blob.digest, blob);
  }
  return [...byDigest.values()];
}
