// Compiles Longshore for the bench into the cache dir, not into the repo's dist/: other work on the
// tree may build or break dist/ meanwhile, and the bench wants a snapshot of src/ taken when it starts.
// node_modules is reached through a symlink, so the compiled files resolve the repo's dependencies.
// Files under src/ that are not TypeScript are copied alongside, as `npm run build` copies src/ui.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LongshoreBuild {
  /** The compiled entry point. */
  mainJs: string;
  /** tsc's diagnostics when src/ did not type-check; the emitted JavaScript is used all the same. */
  typeErrors: string | null;
}

export async function buildLongshore(repoRoot: string, outRoot: string): Promise<LongshoreBuild> {
  const outDir = join(outRoot, 'dist');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outRoot, { recursive: true });
  const modules = join(outRoot, 'node_modules');
  // The cache may hold a link from another checkout (a removed worktree: dangling): point it at this one.
  const wanted = join(repoRoot, 'node_modules');
  if (linkTarget(modules) !== wanted) {
    rmSync(modules, { recursive: true, force: true });
    symlinkSync(wanted, modules, 'dir');
  }
  // The compiled files are ES modules, like the repo's ("type": "module" in its package.json).
  writeFileSync(join(outRoot, 'package.json'), '{ "type": "module", "private": true }\n');
  let typeErrors: string | null = null;
  try {
    await run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.build.json'), '--outDir', outDir], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    typeErrors = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`.trim() || (err as Error).message;
  }
  copyAssets(join(repoRoot, 'src'), outDir);
  const mainJs = join(outDir, 'main.js');
  if (!existsSync(mainJs)) throw new Error(`the Longshore build produced no ${mainJs}:\n${typeErrors ?? ''}`);
  return { mainJs, typeErrors };
}

/** Copies what tsc does not emit (e.g. the dashboard's static files), as `npm run build` does. */
function copyAssets(srcDir: string, outDir: string): void {
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (!entry.name.endsWith('.ts')) {
        const target = join(outDir, relative(srcDir, path));
        mkdirSync(dirname(target), { recursive: true });
        cpSync(path, target);
      }
    }
  };
  walk(srcDir);
}

/** Where a symbolic link points, or undefined when `path` is none (absent, or a real directory). */
function linkTarget(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
