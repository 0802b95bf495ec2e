// The OCI distribution-spec conformance suites against Longshore's local repositories: the released
// v1.1.1 suite and the one on the specification's main branch (sha512, non-distributable layers,
// referrers, …), both built as binaries in ../shared/tools/oci-conformance (see its README) and run by
// its `run` script, which prints "N passed, M failed". Every test must pass. Without the tools the
// suite is skipped with a message; under LONGSHORE_E2E=required it fails instead, as for any tool.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { Longshore, REPO_ROOT } from '../support/e2e/longshore.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWhenAvailable } from '../support/e2e/tools.js';

const run = promisify(execFile);
const SUITES_DIR = join(REPO_ROOT, '..', 'shared', 'tools', 'oci-conformance');
const RUN = join(SUITES_DIR, 'run');
/** Both suites take a few seconds on loopback; the script gives each at most 600 s. */
const SUITE_TIMEOUT = 1_300_000;

function missing(): string | undefined {
  try {
    accessSync(RUN, constants.X_OK);
    for (const binary of ['conformance-v1.1.1', 'conformance-main']) accessSync(join(SUITES_DIR, binary), constants.X_OK);
    return undefined;
  } catch {
    return `the OCI conformance suites are not at ${SUITES_DIR} (run, conformance-v1.1.1, conformance-main)`;
  }
}

/** Per suite, the counts of the script's "suite NAME: N passed, M failed" lines. */
function parseSuites(output: string): Map<string, { passed: number; failed: number }> {
  const out = new Map<string, { passed: number; failed: number }>();
  for (const match of output.matchAll(/^suite (\S+): (\d+) passed, (\d+) failed/gm)) out.set(match[1]!, { passed: Number(match[2]), failed: Number(match[3]) });
  return out;
}

describeWhenAvailable('OCI conformance suites against Longshore', [missing()].filter((m) => m !== undefined), () => {
  const teardown = new Teardown();
  let longshore: Longshore;
  let out: string;

  before(async () => {
    out = teardown.tempDir('suite output', 'longshore-conformance-');
    longshore = teardown.add('longshore', await Longshore.start({
      // team/ is local: the suites never reach an upstream, and this one is never contacted.
      upstreamUrl: 'http://127.0.0.1:9',
      username: '',
      password: '',
      upstream: { username: null, password: null },
      config: { local: { prefixes: ['team/'], allowBlobDelete: true } },
    }), (l) => l.stop());
  }, { timeout: 120_000 });
  after(() => teardown.runAll(), { timeout: 60_000 });

  it('passes every test of distribution-spec v1.1.1 and of its main branch', { timeout: SUITE_TIMEOUT }, async () => {
    const started = Date.now();
    let stdout: string;
    try {
      ({ stdout } = await run(RUN, [longshore.url, 'team/conformance-a', 'team/conformance-b'], { env: { ...process.env, OUT: out }, timeout: SUITE_TIMEOUT, maxBuffer: 16 * 1024 * 1024 }));
    } catch (err) {
      // The script exits 1 when a test failed: its output names them.
      stdout = String((err as { stdout?: string }).stdout ?? '');
      if (stdout === '') throw err;
    }
    const suites = parseSuites(stdout);
    const context = `${stdout}\n--- longshore log ---\n${longshore.recentLog()}`;
    for (const name of ['v1.1.1', 'main']) {
      const result = suites.get(name);
      assert.ok(result, `suite ${name} did not run:\n${context}`);
      assert.ok(result.passed > 0, `suite ${name} passed nothing:\n${context}`);
      assert.equal(result.failed, 0, `suite ${name} failed ${result.failed} test(s):\n${context}`);
    }
    assert.match(stdout, /^conformance: \d+ passed, 0 failed$/m);
    // For the report: how long the suites take against the mirror.
    console.log(`# conformance: ${[...suites].map(([n, r]) => `${n} ${r.passed} passed`).join(', ')} in ${Date.now() - started} ms`);
  });
});
