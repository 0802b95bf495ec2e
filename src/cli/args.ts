// The value after a flag ("--top 5"), for the commands that take a few simple options.
export function option(args: readonly string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
}
