// A probe of src/upstream/parser-compiler.ts (bench/NOTES.md §2): does keepParserOnBaselineCompiler
// still keep hot WebAssembly on V8's baseline compiler (Liftoff), on this Node? Two child processes
// run a hot WebAssembly loop (the sum of 1..n), one with the call and one without, until V8 has
// recompiled it with TurboFan or their time is up (10 s without the call, where tier-up ends the loop
// within milliseconds on an idle machine; 2 s with it, where it never comes), and report which
// compiler's code the function runs. V8's natives syntax (%IsTurboFanFunction) needs its own process
// started with --allow-natives-syntax. It depends on V8's tier-up heuristics and on time, so it is a
// probe rather than a test: run it after a Node upgrade.
//   node --import tsx bench/probe-parser-compiler.ts      exits 1 if the call no longer has its effect
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const MODULE = fileURLToPath(new URL('../src/upstream/parser-compiler.ts', import.meta.url));

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

type Compiler = { liftoff: boolean; turbofan: boolean };

async function compilerAfterHotLoop(mode: 'baseline' | 'default'): Promise<Compiler> {
  const { stdout } = await run(process.execPath,
    ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', CHILD, mode]);
  return JSON.parse(stdout) as Compiler;
}

const [normal, baseline] = await Promise.all([compilerAfterHotLoop('default'), compilerAfterHotLoop('baseline')]);
console.log(`node ${process.version}`);
console.log(`  without keepParserOnBaselineCompiler: ${JSON.stringify(normal)} (expected turbofan: the probe can tell)`);
console.log(`  with keepParserOnBaselineCompiler:    ${JSON.stringify(baseline)} (expected liftoff)`);
const seen = normal.turbofan && !normal.liftoff && baseline.liftoff && !baseline.turbofan;
console.log(seen ? 'the call keeps hot WebAssembly on the baseline compiler' : 'EFFECT NOT SEEN: see src/upstream/parser-compiler.ts');
process.exitCode = seen ? 0 : 1;
