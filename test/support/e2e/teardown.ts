// Stops what a test started, last started first. Every step runs even when an earlier one fails;
// the failures are reported together afterwards.

export class Teardown {
  private readonly steps: Array<{ name: string; run: () => Promise<void> }> = [];

  /** Registers `run` to be called by runAll(); returns `value` for inline use. */
  add<T>(name: string, value: T, run: (value: T) => Promise<void>): T {
    this.steps.push({ name, run: () => run(value) });
    return value;
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
