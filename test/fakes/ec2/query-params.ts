/**
 * The parameters of one EC2 Query request, read the way EC2 reads them: flat names, lists as
 * `Name.1`, `Name.2`, … (numbered from 1; order by number, gaps ignored), structures as
 * `Name.Member`, lists of structures as `Name.N.Member`.
 */
export class QueryParams {
  private readonly map: ReadonlyMap<string, string>;

  constructor(entries: Iterable<readonly [string, string]>) {
    // A repeated name keeps its last value, as URLSearchParams.get would not (it keeps the first):
    // the SDK never repeats a name, and last-wins is the usual form-parsing rule.
    this.map = new Map(entries);
  }

  static fromBody(body: string): QueryParams {
    return new QueryParams(new URLSearchParams(body).entries());
  }

  get(name: string): string | undefined {
    return this.map.get(name);
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  /** The values of `prefix.1`, `prefix.2`, …, ordered by their number. */
  list(prefix: string): string[] {
    return this.indices(prefix)
      .filter((i) => this.map.has(`${prefix}.${i}`))
      .map((i) => this.map.get(`${prefix}.${i}`)!);
  }

  /**
   * The numbers N under `prefix` (from `prefix.N` and `prefix.N.anything`), sorted; each names
   * one element of a list of scalars or structures.
   */
  indices(prefix: string): number[] {
    const found = new Set<number>();
    const head = `${prefix}.`;
    for (const key of this.map.keys()) {
      if (!key.startsWith(head)) continue;
      const rest = key.slice(head.length);
      const match = /^(\d+)(?:\.|$)/.exec(rest);
      if (match) found.add(Number(match[1]));
    }
    return [...found].sort((a, b) => a - b);
  }

  /** Every parameter except the named ones, as a plain object (for the call log). */
  without(...names: string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of this.map) if (!names.includes(k)) out[k] = v;
    return out;
  }

  /**
   * A canonical text of every parameter except the named ones: equal for two requests exactly
   * when they carry the same names with the same values, whatever the order they were sent in.
   */
  canonical(...except: string[]): string {
    return JSON.stringify([...this.map].filter(([k]) => !except.includes(k)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}
