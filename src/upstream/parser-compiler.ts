// Keeps undici's HTTP parser on V8's baseline WebAssembly compiler.
//
// undici parses every upstream response with llhttp compiled to WebAssembly. V8 first compiles it with
// its baseline compiler (Liftoff) and, once the parser is hot, recompiles it with TurboFan on a worker
// thread. llhttp's parser is one very large function, and that recompilation took about 35 MB of native
// memory for a few hundred milliseconds at the start of a process's first large download (a glibc
// arena of a V8 worker thread, seen in /proc/<pid>/smaps): 8 clients on a cold 1 GiB layer peaked at
// 144-154 MB RSS with it and 123-128 MB without it (bench/NOTES.md §2). It buys nothing measurable here:
// the parser reads headers, and a body's bytes only pass it by reference. undici's client fetching
// 1 GiB, and 20,000 small responses, used the same CPU either way, within this machine's noise.
//
// The flag applies to code V8 has yet to tier up, so this runs before the first upstream request. It is
// process-wide: any other WebAssembly in the process stays on the baseline compiler too (there is none).
import { setFlagsFromString } from 'node:v8';

export function keepParserOnBaselineCompiler(): void {
  setFlagsFromString('--liftoff-only');
}
