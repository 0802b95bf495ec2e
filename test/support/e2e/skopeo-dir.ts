// An image in the layout of skopeo's `dir:` transport (containers/image, dir version 1.1):
// `manifest.json` holds the top-level manifest, `<hex>.manifest.json` each instance of a list,
// `<hex>` every other blob. writeSkopeoDir writes a TestImage so (the manifests' media types are read
// from their own bytes); expectSkopeoDir checks what `skopeo copy --all … dir:` wrote.
// The `oci:` layout transport of skopeo 1.9 is no use for writing: it only accepts index.json entries
// with OCI media types ("no descriptor found for reference"), so it cannot hold a Docker list.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Digest, type TestImage } from '../images.js';

function hex(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1);
}

/** The files of `image` in the `dir:` layout, by name; the `version` file aside. */
function skopeoDirFiles(image: TestImage): Map<string, Buffer> {
  const files = new Map<string, Buffer>([['manifest.json', image.index.bytes]]);
  for (const platform of image.platforms) {
    files.set(`${hex(platform.manifest.digest)}.manifest.json`, platform.manifest.bytes);
    for (const blob of [platform.config, ...platform.layers]) files.set(hex(blob.digest), blob.bytes);
  }
  return files;
}

export function writeSkopeoDir(image: TestImage, dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  for (const [name, bytes] of skopeoDirFiles(image)) writeFileSync(join(dir, name), bytes);
}

/**
 * Asserts that `dir` holds a `dir:` copy of all of `image` (made with --all): every file hashes to the
 * digest it is named by (manifest.json to the index's), and the files are exactly the image's, each byte
 * for byte what was published, with nothing else besides `version`. `what` names the copy in messages.
 */
export function expectSkopeoDir(dir: string, image: TestImage, what: string): void {
  const files = readdirSync(dir).filter((f) => f !== 'version').sort();
  const misnamed = files.filter((f) => {
    const digest = sha256Digest(readFileSync(join(dir, f)));
    return f === 'manifest.json' ? digest !== image.index.digest : `sha256:${f.replace(/\.manifest\.json$/, '')}` !== digest;
  });
  assert.deepEqual(misnamed, [], `files of ${what} whose content does not hash to their digest`);
  const expected = skopeoDirFiles(image);
  assert.deepEqual(files, [...expected.keys()].sort(), `files of ${what}`);
  const different = files.filter((f) => !readFileSync(join(dir, f)).equals(expected.get(f)!));
  assert.deepEqual(different, [], `files of ${what} that differ from what was published`);
}
