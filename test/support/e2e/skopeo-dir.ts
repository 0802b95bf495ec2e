// Writes a TestImage in the layout of skopeo's `dir:` transport (containers/image, dir version
// 1.1): `manifest.json` holds the top-level manifest, `<hex>.manifest.json` each instance of a
// list, `<hex>` every other blob. The manifests' media types are read from their own bytes.
// The `oci:` layout transport of skopeo 1.9 is no use here: it only accepts index.json entries
// with OCI media types ("no descriptor found for reference"), so it cannot hold a Docker list.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestImage } from '../images.js';

function hex(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

export function writeSkopeoDir(image: TestImage, dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  writeFileSync(join(dir, 'manifest.json'), image.index.bytes);
  for (const platform of image.platforms) {
    writeFileSync(join(dir, `${hex(platform.manifest.digest)}.manifest.json`), platform.manifest.bytes);
    for (const blob of [platform.config, ...platform.layers]) writeFileSync(join(dir, hex(blob.digest)), blob.bytes);
  }
}
