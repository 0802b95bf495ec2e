// Gate for suites that need system programs or privileges. What is missing skips the suite with the
// Debian package to install, except under LONGSHORE_E2E=required (CI), where it fails instead:
// CI must never turn green by skipping the only tests that exercise a real Docker client.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

const DEBIAN_PACKAGE = {
  dockerd: 'docker.io',
  docker: 'docker.io',
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  containerd: 'containerd',
  ctr: 'containerd',
  openssl: 'openssl',
  chromium: 'chromium',
  podman: 'podman',
  haproxy: 'haproxy',
  busybox: 'busybox-static',
} as const;

export type Tool = keyof typeof DEBIAN_PACKAGE;

/** Absolute path of an executable found on PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** One line per missing tool, naming the Debian package that provides it. */
export function missingTools(tools: readonly Tool[]): string[] {
  return tools
    .filter((tool) => findOnPath(tool) === undefined)
    .map((tool) => `${tool} not found (Debian package ${DEBIAN_PACKAGE[tool]})`);
}

export function toolsAreRequired(): boolean {
  return process.env.LONGSHORE_E2E === 'required';
}

/**
 * describe() that runs only when nothing is missing (`missing` says what is, one line each). Otherwise
 * the suite is replaced by one skipped test whose message says what to install, or by one failing
 * test when LONGSHORE_E2E=required: that variable is the contract that the machine has everything.
 */
export function describeWhenAvailable(name: string, missing: readonly string[], body: () => void): void {
  if (missing.length === 0) {
    describe(name, body);
  } else if (toolsAreRequired()) {
    describe(name, () => {
      it('has everything it needs (LONGSHORE_E2E=required)', () => {
        assert.fail(missing.join('; '));
      });
    });
  } else {
    // A skipped test rather than a skipped suite: the runner counts it in its "skipped" total.
    describe(name, () => {
      it('has everything it needs', { skip: `skipped: ${missing.join('; ')}` }, () => {});
    });
  }
}

/** describe() that runs only when every tool is on PATH (see describeWhenAvailable). */
export function describeWithTools(name: string, tools: readonly Tool[], body: () => void): void {
  describeWhenAvailable(name, missingTools(tools), body);
}
