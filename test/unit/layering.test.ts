// Issue 14 item 3: storage/ and metadata/ sit behind narrow interfaces, nothing reaches through a
// facade into them, and the disk layout is known to storage/paths.ts alone. These read the source:
// each rule names the files that break it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

const SRC = join(import.meta.dirname, '..', '..', 'src');

function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Files (relative to src/) whose text matches `pattern`, except those `allowed` names. */
function offenders(pattern: RegExp, allowed: (file: string) => boolean = () => false): string[] {
  return sources().map((path) => relative(SRC, path)).filter((file) => !allowed(file) && pattern.test(readFileSync(join(SRC, file), 'utf8')));
}

describe('layering', () => {
  it('nothing reaches through LocalContent into the store or the catalog', () => {
    assert.deepEqual(offenders(/\blocal\.(store|catalog)\b/), []);
  });

  it('only storage/ and the composition roots use StorePaths; no one else builds a path in the data directory', () => {
    // core.ts opens the directory, app.ts writes the admin token, cli/ finds the lock and reads the database.
    const composition = (file: string) => file.startsWith('storage/') || ['core.ts', 'app.ts', 'cli/maintenance.ts', 'cli/owner.ts'].includes(file);
    assert.deepEqual(offenders(/\.paths\.|\bStorePaths\b/, composition), []);
  });

  it('no module spells out a directory or file of the layout', () => {
    const layout = /join\([^)]*['"`](?:blobs|tmp|uploads|quarantine|auth|longshore\.db|longshore\.lock|admin\.token)['"`]/;
    assert.deepEqual(offenders(layout, (file) => file === 'storage/paths.ts'), []);
  });

  it('the composition roots wire services with signals, not by assigning to a service built earlier', () => {
    // e.g. `local.onGrowth = () => evictor.check()`: a setter in disguise.
    assert.deepEqual(offenders(/^\s*[a-z]\w*\.[a-z]\w*\s*=[^=]/m, (file) => !['core.ts', 'app.ts', 'cli/main.ts'].includes(file)), []);
  });
});
