// The gate of suites that need system programs or privileges (test/support/e2e/tools.ts): what is
// missing skips the suite, except under LONGSHORE_E2E=required, where the suite fails instead.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const TOOLS = fileURLToPath(new URL('../support/e2e/tools.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'longshore-gate-'));

/** Runs a one-suite test file gated on `missing`, with LONGSHORE_E2E set to `e2e`; returns its exit code and output. */
function runGated(missing: string[], e2e: string | undefined): { status: number | null; output: string } {
  const file = join(dir, `gated-${Math.random().toString(36).slice(2)}.test.ts`);
  writeFileSync(file, [
    `import { it } from 'node:test';`,
    `import { describeWhenAvailable } from ${JSON.stringify(TOOLS)};`,
    `describeWhenAvailable('gated suite', ${JSON.stringify(missing)}, () => { it('runs the body', () => {}); });`,
  ].join('\n'));
  const env = { ...process.env };
  delete env.LONGSHORE_E2E;
  delete env.NODE_TEST_CONTEXT; // set by the runner of this file; the child must run its own file
  if (e2e !== undefined) env.LONGSHORE_E2E = e2e;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], { env, encoding: 'utf8' });
  return { status: child.status, output: child.stdout + child.stderr };
}

describe('describeWhenAvailable', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the suite when nothing is missing, required or not', () => {
    for (const e2e of [undefined, 'required']) {
      const { status, output } = runGated([], e2e);
      assert.equal(status, 0, output);
      assert.match(output, /^# pass 1$/m);
      assert.match(output, /^# skipped 0$/m);
    }
  });

  it('skips, naming what is missing, when LONGSHORE_E2E is not "required"', () => {
    const { status, output } = runGated(['not root: mounting a tmpfs needs root'], undefined);
    assert.equal(status, 0, output);
    assert.match(output, /^# skipped 1$/m);
    assert.match(output, /not root: mounting a tmpfs needs root/);
    assert.doesNotMatch(output, /runs the body/);
  });

  it('fails, naming what is missing, under LONGSHORE_E2E=required', () => {
    const { status, output } = runGated(['mount not found (Debian package mount)'], 'required');
    assert.notEqual(status, 0, output);
    assert.match(output, /^# fail 1$/m);
    assert.match(output, /mount not found \(Debian package mount\)/);
    assert.match(output, /^# skipped 0$/m);
  });
});
