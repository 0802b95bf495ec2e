// The bench's test images, generated once into the cache dir as skopeo `dir:` layouts and reused:
//   multi  small multi-arch image (Docker manifest list, linux/amd64 + linux/arm64; the e2e rig's)
//   five   ~150 MiB, five gzipped tar layers
//   big    one ~1 GiB layer
// Layer content is AES-CTR keystream: incompressible, and cheap to make. Large layers are streamed
// through tar → gzip → file while both digests (diff_id and blob digest) are computed, so a 1 GiB
// layer never sits in memory; configs and manifests come from the tests' image builder
// (test/support/images.ts). An image counts as generated once its bench-image.json exists.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { buildMultiArchImage, imageConfig, imageManifest } from '../../test/support/images.js';
import { DOCKER } from '../../test/support/media-types.js';
import { tarHeader } from '../../test/support/tar.js';
import { writeSkopeoDir } from '../../test/support/e2e/skopeo-dir.js';
import { MiB, GiB, formatBytes } from './units.js';

export interface BenchBlob {
  digest: string;
  size: number;
  mediaType: string;
}

export interface BenchImage {
  name: 'multi' | 'five' | 'big';
  repository: string;
  tag: string;
  /** skopeo `dir:` layout. */
  dir: string;
  multiArch: boolean;
  /** The manifest the tag points to (the index for a multi-arch image). */
  manifest: BenchBlob;
  /** Layers of the linux/amd64 image, the one a client on this machine pulls. */
  layers: BenchBlob[];
  /** Bytes of config and layers of the linux/amd64 image. */
  pullBytes: number;
}

export interface ImageSizes {
  /** Uncompressed payload of each layer of `five`. */
  five: number[];
  /** Uncompressed payload of the single layer of `big`. */
  big: number;
}

export const FULL_SIZES: ImageSizes = { five: [50, 40, 30, 20, 10].map((n) => n * MiB), big: GiB };
export const QUICK_SIZES: ImageSizes = { five: [10, 8, 6, 4, 2].map((n) => n * MiB), big: 128 * MiB };

const META = 'bench-image.json';

/** Returns the three images, generating any that the cache does not hold yet. */
export async function prepareImages(imagesDir: string, tag: string, sizes: ImageSizes): Promise<Record<BenchImage['name'], BenchImage>> {
  mkdirSync(imagesDir, { recursive: true });
  const multi = await cached(join(imagesDir, 'multi'), () => generateMulti(join(imagesDir, 'multi'), tag));
  const five = await cached(join(imagesDir, 'five'), () => generateSingle(join(imagesDir, 'five'), 'five', tag, sizes.five));
  const big = await cached(join(imagesDir, 'big'), () => generateSingle(join(imagesDir, 'big'), 'big', tag, [sizes.big]));
  return { multi, five, big };
}

async function cached(dir: string, generate: () => Promise<BenchImage>): Promise<BenchImage> {
  const metaPath = join(dir, META);
  if (existsSync(metaPath)) return JSON.parse(readFileSync(metaPath, 'utf8')) as BenchImage;
  rmSync(dir, { recursive: true, force: true });
  const started = Date.now();
  const image = await generate();
  writeFileSync(metaPath, JSON.stringify(image, null, 2));
  console.log(`  generated ${image.repository}:${image.tag} (${formatBytes(image.pullBytes)}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return image;
}

async function generateMulti(dir: string, tag: string): Promise<BenchImage> {
  const image = buildMultiArchImage({ repository: 'bench/multi', tag, format: 'docker' });
  writeSkopeoDir(image, dir);
  const amd64 = image.platforms.find((p) => p.platform.architecture === 'amd64')!;
  const blob = (b: { digest: string; size: number; mediaType: string }): BenchBlob => ({ digest: b.digest, size: b.size, mediaType: b.mediaType });
  return {
    name: 'multi',
    repository: image.repository,
    tag,
    dir,
    multiArch: true,
    manifest: blob(image.index),
    layers: amd64.layers.map(blob),
    pullBytes: amd64.config.size + amd64.layers.reduce((sum, l) => sum + l.size, 0),
  };
}

async function generateSingle(dir: string, name: 'five' | 'big', tag: string, layerSizes: readonly number[]): Promise<BenchImage> {
  mkdirSync(dir, { recursive: true });
  const layers: Array<BenchBlob & { diffId: string }> = [];
  for (const [i, size] of layerSizes.entries()) layers.push(await writeRandomLayer(dir, `${name}-${i}`, size));
  const config = imageConfig('docker', `bench/${name}:${tag}`, { architecture: 'amd64', os: 'linux' }, layers.map((l, i) => ({ diffId: l.diffId, label: String(i) })));
  writeFileSync(join(dir, hex(config.digest)), config.bytes);
  const manifest = imageManifest('docker', config, layers);
  writeFileSync(join(dir, 'manifest.json'), manifest.bytes);
  writeFileSync(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  return {
    name,
    repository: `bench/${name}`,
    tag,
    dir,
    multiArch: false,
    manifest: { digest: manifest.digest, size: manifest.size, mediaType: manifest.mediaType },
    layers: layers.map(({ digest, size, mediaType }) => ({ digest, size, mediaType })),
    pullBytes: config.size + layers.reduce((sum, l) => sum + l.size, 0),
  };
}

/** Streams a one-file tar of `size` incompressible bytes through gzip into `<dir>/<hex>`. */
async function writeRandomLayer(dir: string, label: string, size: number): Promise<BenchBlob & { diffId: string }> {
  const tarHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let blobSize = 0;
  const tempPath = join(dir, `${label}.partial`);
  async function* tarStream(): AsyncGenerator<Buffer> {
    const cipher = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
    const zeros = Buffer.alloc(MiB);
    const emit = (chunk: Buffer) => {
      tarHash.update(chunk);
      return chunk;
    };
    yield emit(tarHeader('longshore-bench/', true, 0));
    yield emit(tarHeader(`longshore-bench/${label}.bin`, false, size));
    for (let left = size; left > 0; left -= MiB) yield emit(cipher.update(zeros.subarray(0, Math.min(MiB, left))));
    yield emit(Buffer.alloc((512 - (size % 512)) % 512 + 1024));
  }
  const hashBlob = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      blobHash.update(chunk);
      blobSize += chunk.length;
      callback(null, chunk);
    },
  });
  await pipeline(tarStream(), createGzip({ level: 1 }), hashBlob, createWriteStream(tempPath));
  const digest = `sha256:${blobHash.digest('hex')}`;
  renameSync(tempPath, join(dir, hex(digest)));
  return { digest, size: blobSize, mediaType: DOCKER.layer, diffId: `sha256:${tarHash.digest('hex')}` };
}

function hex(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}
