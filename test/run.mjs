#!/usr/bin/env node
// Runs the test suites with Node's own test runner, TypeScript loaded through tsx.
// Usage: node test/run.mjs [unit|integration|e2e ...]   (no argument: every suite)
// Node 20's --test does not expand globs, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const suites = process.argv.slice(2);
const roots = (suites.length > 0 ? suites : ['unit', 'integration', 'e2e']).map((s) => join('test', s));

function collect(dir) {
  let out = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out = out.concat(collect(path));
    else if (entry.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const files = roots.filter((root) => existsSync(root)).flatMap(collect).sort();
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
