// Stops what a test started, last started first, and removes the temp dirs it made. Every step runs
// even when an earlier one fails; the failures are reported together afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class Teardown {
  private readonly steps: Array<{ name: string; run: () => Promise<void> }> = [];

  /** Registers `run` to be called by runAll(); returns `value` for inline use. */
  add<T>(name: string, value: T, run: (value: T) => Promise<void>): T {
    this.steps.push({ name, run: () => run(value) });
    return value;
  }

  /** A new directory under the OS temp dir, named `prefix…`, that runAll() removes with all it holds. */
  tempDir(name: string, prefix: string): string {
    return this.add(name, mkdtempSync(join(tmpdir(), prefix)), async (dir) => rmSync(dir, { recursive: true, force: true }));
  }

  async runAll(): Promise<void> {
    const failures: string[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step.run();
      } catch (err) {
        failures.push(`${step.name}: ${(err as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(`teardown failed:\n${failures.join('\n')}`);
  }
}
