// The spec's list pagination (tags/list, _catalog) over a sorted list: entries after `last`, at most `n`,
// and the query of the next page when there is one.
import type { TagListQuery } from './types.js';

export function paginate(sorted: readonly string[], query: TagListQuery): { tags: string[]; next?: string } {
  const start = query.last === undefined ? 0 : sorted.findIndex((t) => t > query.last!);
  const rest = start < 0 ? [] : sorted.slice(start);
  if (query.n === undefined || rest.length <= query.n) return { tags: rest };
  // n=0 asks for nothing: an empty page, and no next page that would have no `last` to start after.
  if (query.n === 0) return { tags: [] };
  const tags = rest.slice(0, query.n);
  return { tags, next: new URLSearchParams({ n: String(query.n), last: tags.at(-1)! }).toString() };
}
