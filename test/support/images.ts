// The one image builder of the tests and the bench. Builds images in memory: real gzipped tar layers
// of incompressible random files, image configs whose diff_ids are the digests of the uncompressed
// tars, one manifest per platform and an index over them, in Docker or OCI media types. buildImage
// takes any layout; buildMultiArchImage makes linux/amd64 + linux/arm64 sharing their first layer;
// buildImageFamily makes several tags sharing base layers; publishImage puts a small multi-arch image
// on an in-process FakeRegistry. Every build draws fresh random content, so two builds never share a
// blob by accident. (The bench streams its large layers with tarHeader, from ./tar.ts.)
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { FakeRegistry } from './fake-registry.js';
import { OCI, mediaTypesOf, type ImageFormat } from './media-types.js';
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

/** A descriptor as it appears inside a manifest or index. */
export interface Descriptor {
  mediaType: string;
  size: number;
  digest: string;
}

function descriptor(blob: Descriptor): Descriptor {
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

/** What a config says of one layer: its uncompressed digest, and a label for its history entry. */
export interface LayerHistory {
  diffId: string;
  label: string;
}

/** The image config of one platform over `layers` (bottom first); `name` goes into a label. */
export function imageConfig(format: ImageFormat, name: string, platform: Platform, layers: readonly LayerHistory[]): Blob {
  return blobOf(json({
    architecture: platform.architecture,
    os: platform.os,
    created: CREATED,
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      Labels: { 'org.longshore.test.image': name },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created: CREATED, created_by: `longshore test layer ${l.label}` })),
  }), mediaTypesOf(format).config);
}

/** An image manifest over a config and layers already built (the bench streams its layers to disk). */
export function imageManifest(format: ImageFormat, config: Descriptor, layers: readonly Descriptor[]): Blob {
  const types = mediaTypesOf(format);
  return blobOf(json({
    schemaVersion: 2,
    mediaType: types.manifest,
    config: descriptor(config),
    layers: layers.map(descriptor),
  }), types.manifest);
}

function platformImage(spec: ImageSpec, platform: Platform, layers: readonly Layer[], configKind: 'full' | 'minimal' = 'full'): PlatformImage {
  const config = configKind === 'full'
    ? imageConfig(spec.format, `${spec.repository}:${spec.tag}`, platform, layers)
    : blobOf(Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] } })), mediaTypesOf(spec.format).config);
  const compressed = layers.map((l) => l.compressed);
  return { platform, manifest: imageManifest(spec.format, config, compressed), config, layers: compressed };
}

/** One layer: a label (the directory its files are in) and the sizes of its random files, in bytes. */
export interface LayerSpec {
  label: string;
  files: readonly number[];
}

/** Which layers each linux platform has: `shared` first (the same blobs in every platform), then its own. */
export interface ImageLayout {
  shared: readonly LayerSpec[];
  /** architecture → the layers only that platform has */
  own: Readonly<Record<string, readonly LayerSpec[]>>;
  /**
   * `minimal`: each config is just `{ architecture, os, rootfs }` with no diff_ids, so the configs of one
   * platform are the same blob across images (what publishImage gives the in-process tests, some of
   * which count on such a shared blob). Default `full`: a config a container runtime accepts.
   */
  config?: 'full' | 'minimal';
}

export function buildImage(spec: ImageSpec, layout: ImageLayout): TestImage {
  const { layer } = mediaTypesOf(spec.format);
  const shared = layout.shared.map((l) => randomLayer(l.label, l.files, layer));
  const platforms = Object.entries(layout.own).map(([architecture, own]) =>
    platformImage(spec, { architecture, os: 'linux' }, [...shared, ...own.map((l) => randomLayer(l.label, l.files, layer))], layout.config));
  return { ...spec, index: indexOf(spec.format, platforms), platforms };
}

export function buildMultiArchImage(spec: ImageSpec): TestImage {
  return buildImage(spec, {
    shared: [{ label: 'base', files: [768 * KiB, 256 * KiB] }],
    own: {
      amd64: [{ label: 'amd64-app', files: [1536 * KiB] }, { label: 'amd64-extra', files: [512 * KiB] }],
      arm64: [{ label: 'arm64-app', files: [1024 * KiB] }],
    },
  });
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
  /** The image as built. */
  image: TestImage;
}

/**
 * Publishes a small multi-arch image to a FakeRegistry: an index of linux/amd64 and linux/arm64 whose
 * manifests share their first layer and have one layer of their own, each layer one random file of
 * `layerSize` bytes (a blob is that plus tar headers and gzip framing, about 2 KiB more). Configs are
 * minimal: alike across images of one platform.
 */
export function publishImage(fake: FakeRegistry, repository: string, tag: string, format: ImageFormat = 'docker', layerSize = 64 * KiB): PublishedImage {
  const image = buildImage({ repository, tag, format }, {
    shared: [{ label: 'shared', files: [layerSize] }],
    own: { amd64: [{ label: 'amd64', files: [layerSize] }], arm64: [{ label: 'arm64', files: [layerSize] }] },
    config: 'minimal',
  });
  const blobs = new Map<string, Buffer>();
  for (const p of image.platforms) {
    // layers, then the config: tests pick blobs by position ([0] is the shared layer)
    for (const blob of [...p.layers, p.config]) {
      fake.addBlob(blob.bytes);
      fake.grant(repository, blob.digest);
      blobs.set(blob.digest, blob.bytes);
    }
  }
  const platforms: Record<string, string> = {};
  for (const p of image.platforms) {
    platforms[`${p.platform.os}/${p.platform.architecture}`] = fake.addManifest(repository, p.manifest.mediaType, p.manifest.bytes);
  }
  const index = fake.addManifest(repository, image.index.mediaType, image.index.bytes, tag);
  const types = mediaTypesOf(format);
  return { repository, tag, index, indexType: types.index, platforms, manifestType: types.manifest, blobs, image };
}

/** The descriptor of a published image's index: what an artifact about the whole image names as its subject. */
export function indexDescriptor(fake: FakeRegistry, image: PublishedImage): Descriptor {
  return { digest: image.index, size: fake.manifests.get(image.index)!.body.length, mediaType: image.indexType };
}

/** What publishArtifact put on the registry: the artifact manifest, and its one layer with the layer's bytes. */
export interface PublishedArtifact {
  digest: string;
  layer: string;
  payload: Buffer;
}

export interface ArtifactOptions {
  /** A tag for the artifact manifest, e.g. cosign's `sha256-<hex>.sig`. Default none. */
  tag?: string;
  /** Bytes of random payload in the one layer. Default 64. */
  payloadSize?: number;
  /** The manifest's annotations. Default none (no `annotations` field). */
  annotations?: Record<string, string>;
}

const EMPTY_CONFIG = Buffer.from('{}');

/**
 * Publishes to a FakeRegistry an OCI 1.1 artifact about `subject` (a signature, an SBOM): a manifest of
 * `artifactType` with the empty config (`application/vnd.oci.empty.v1+json`), one layer of random
 * bytes, and the subject; both blobs are granted to `repository`.
 */
export function publishArtifact(fake: FakeRegistry, repository: string, subject: Descriptor, artifactType: string, options: ArtifactOptions = {}): PublishedArtifact {
  const config = fake.addBlob(EMPTY_CONFIG);
  const payload = randomBytes(options.payloadSize ?? 64);
  const layer = fake.addBlob(payload);
  fake.grant(repository, config);
  fake.grant(repository, layer);
  const digest = fake.addManifest(repository, OCI.manifest, {
    schemaVersion: 2,
    mediaType: OCI.manifest,
    artifactType,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: EMPTY_CONFIG.length },
    layers: [{ mediaType: artifactType, digest: layer, size: payload.length }],
    subject,
    ...(options.annotations === undefined ? {} : { annotations: options.annotations }),
  }, options.tag);
  return { digest, layer, payload };
}
