// A probe of src/storage/scavenger.ts (bench/NOTES.md §2): does the collector youngCollector() gets
// in a process started without --expose-gc still free the young generation? Fills the young
// generation with garbage, scavenges once through a Scavenger, and prints new_space's used bytes
// before and after. It measures a GC effect, which depends on V8's heap sizing, so it is a probe
// rather than a test: run it after a Node upgrade.
//   node --import tsx bench/probe-scavenger.ts      exits 1 if fewer than 100 000 bytes were freed
import { getHeapSpaceStatistics } from 'node:v8';
import { SCAVENGE_EVERY, Scavenger, youngCollector } from '../src/storage/scavenger.js';

const young = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')!.space_used_size;
const collector = youngCollector();
if (collector === undefined) {
  console.log('no collector in this process: the scavenger does nothing here');
  process.exit(1);
}
let junk: object[] | undefined = [];
for (let i = 0; i < 5000; i++) junk.push({ i });
junk = undefined;
const full = young();
new Scavenger(collector).dropped(SCAVENGE_EVERY); // a scavenge, synchronously
const after = young();
console.log(`node ${process.version}: new_space used ${full} → ${after} bytes (${full - after} freed)`);
process.exitCode = full - after >= 100_000 ? 0 : 1;
