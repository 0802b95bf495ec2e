import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MODULE = fileURLToPath(new URL('../../src/upstream/parser-compiler.ts', import.meta.url));

// A child process runs a hot WebAssembly loop (the sum of 1..n) until V8 has recompiled it with
// TurboFan or its time is up (10 s by default, where tier-up ends the loop within milliseconds; 2 s on
// the baseline compiler, where it never comes), and reports which compiler's code the function runs. V8's natives
// syntax (%IsTurboFanFunction) needs its own process started with --allow-natives-syntax.
const CHILD = `
import { keepParserOnBaselineCompiler } from ${JSON.stringify(MODULE)};
if (process.argv[1] === 'baseline') keepParserOnBaselineCompiler();
const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 3, 2, 1, 0, 7, 8, 1, 4,
  108, 111, 111, 112, 0, 0, 10, 27, 1, 25, 1, 1, 127, 3, 64, 32, 1, 32, 0, 106, 33, 1, 32, 0, 65, 1, 107, 34, 0,
  13, 0, 11, 32, 1, 11]);
const { loop } = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports;
if (loop(100) !== 5050) throw new Error('the test module computes the wrong sum');
const deadline = Date.now() + (process.argv[1] === 'baseline' ? 2000 : 10000);
while (!%IsTurboFanFunction(loop) && Date.now() < deadline) {
  for (let i = 0; i < 100; i++) loop(10000);
  await new Promise((resolve) => setTimeout(resolve, 1));
}
console.log(JSON.stringify({ liftoff: %IsLiftoffFunction(loop), turbofan: %IsTurboFanFunction(loop) }));
`;

async function compilerAfterHotLoop(mode: 'baseline' | 'default'): Promise<{ liftoff: boolean; turbofan: boolean }> {
  const { stdout } = await run(process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', CHILD, mode]);
  return JSON.parse(stdout) as { liftoff: boolean; turbofan: boolean };
}

describe('keepParserOnBaselineCompiler', () => {
  it('keeps hot WebAssembly on the baseline compiler, where V8 would otherwise recompile it', async () => {
    const [normal, baseline] = await Promise.all([compilerAfterHotLoop('default'), compilerAfterHotLoop('baseline')]);
    assert.deepEqual(normal, { liftoff: false, turbofan: true }, 'without it, the hot loop is tiered up (the test can tell)');
    assert.deepEqual(baseline, { liftoff: true, turbofan: false });
  });
});
