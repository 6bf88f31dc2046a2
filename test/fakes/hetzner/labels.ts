/**
 * Hetzner's label rules and label selector language (docs.hetzner.cloud, Overview → Labels and
 * Label Selector).
 *
 * Keys: an optional prefix and a name, separated by '/'. The name is required, at most 63
 * characters, beginning and ending with [a-z0-9A-Z] with '-', '_', '.' and alphanumerics
 * between. The prefix, if given, is a DNS subdomain: DNS labels separated by '.', at most 253
 * characters in all. The prefix `hetzner.cloud/` is reserved.
 * Values: at most 63 characters, empty or beginning and ending with [a-z0-9A-Z] with '-', '_',
 * '.' and alphanumerics between.
 *
 * Selector: `k==v` / `k=v`, `k!=v`, `k`, `!k`, `k in (v1,v2)`, `k notin (v1,v2)`, joined by ','
 * (AND). As in Kubernetes, from which the language is taken, `k!=v` and `k notin (…)` also
 * match a resource that has no label `k`.
 */

const NAME = /^[a-zA-Z0-9](?:[a-zA-Z0-9._-]{0,61}[a-zA-Z0-9])?$/;
const DNS_LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;
export const RESERVED_PREFIX = 'hetzner.cloud';

/** Why a label key is refused, or undefined when it is valid. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (prefix.length === 0 || prefix.length > 253 || !prefix.split('.').every((l) => DNS_LABEL.test(l))) {
      return `label key '${key}': the prefix must be a DNS subdomain of at most 253 characters`;
    }
    if (prefix === RESERVED_PREFIX) return `label key '${key}': the prefix '${RESERVED_PREFIX}/' is reserved`;
  }
  if (!NAME.test(name)) {
    return `label key '${key}': the name must be 1-63 characters of [a-zA-Z0-9-_.], beginning and ending with an alphanumeric character`;
  }
  return undefined;
}

/** Why a label value is refused, or undefined when it is valid. */
export function labelValueProblem(key: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return `label '${key}': the value must be a string`;
  if (value === '' || NAME.test(value)) return undefined;
  return `label '${key}': the value must be empty or 1-63 characters of [a-zA-Z0-9-_.], beginning and ending with an alphanumeric character`;
}

/** Checks a `labels` object from a request; answers the labels or the problems found. */
export function checkLabels(value: unknown): { labels: Record<string, string>; problems: string[] } {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { labels: {}, problems: ['labels must be an object of string values'] };
  }
  const labels: Record<string, string> = {};
  const problems: string[] = [];
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    const problem = labelKeyProblem(key) ?? labelValueProblem(key, v);
    if (problem !== undefined) problems.push(problem);
    else labels[key] = v as string;
  }
  return { labels, problems };
}

export type Requirement =
  | { op: 'exists' | 'absent'; key: string }
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] };

export class LabelSelectorError extends Error {}

const KEY = String.raw`[a-zA-Z0-9][a-zA-Z0-9._/-]*`;
const VALUE = String.raw`[a-zA-Z0-9._-]*`;
const ABSENT = new RegExp(String.raw`^!\s*(${KEY})$`);
const SET = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^()]*)\)$`);
const COMPARE = new RegExp(String.raw`^(${KEY})\s*(==|!=|=)\s*(${VALUE})$`);
const EXISTS = new RegExp(String.raw`^(${KEY})$`);

/** Parses a selector into requirements (all must hold); throws LabelSelectorError on bad syntax. */
export function parseLabelSelector(selector: string): Requirement[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw new LabelSelectorError(`unbalanced ')' in '${selector}'`);
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += ch;
  }
  if (depth !== 0) throw new LabelSelectorError(`unbalanced '(' in '${selector}'`);
  terms.push(current);
  if (terms.length === 1 && terms[0]!.trim() === '') return [];

  return terms.map((raw) => {
    const term = raw.trim();
    let m: RegExpExecArray | null;
    const key = (k: string): string => {
      const problem = labelKeyProblem(k.replace(/^hetzner\.cloud\//, 'x/'));
      if (problem !== undefined) throw new LabelSelectorError(problem);
      return k;
    };
    if ((m = ABSENT.exec(term))) return { op: 'absent', key: key(m[1]!) };
    if ((m = SET.exec(term))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      if (values.some((v) => !new RegExp(`^${VALUE}$`).test(v))) throw new LabelSelectorError(`bad value list in '${term}'`);
      return { op: m[2] === 'in' ? 'in' : 'notin', key: key(m[1]!), values };
    }
    if ((m = COMPARE.exec(term))) return { op: m[2] === '!=' ? 'neq' : 'eq', key: key(m[1]!), value: m[3]! };
    if ((m = EXISTS.exec(term))) return { op: 'exists', key: key(m[1]!) };
    throw new LabelSelectorError(`cannot parse '${term}'`);
  });
}

export function matchesRequirement(labels: Readonly<Record<string, string>>, r: Requirement): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const value = labels[r.key];
  switch (r.op) {
    case 'exists':
      return has;
    case 'absent':
      return !has;
    case 'eq':
      return has && value === r.value;
    case 'neq':
      return !has || value !== r.value;
    case 'in':
      return has && r.values.includes(value!);
    case 'notin':
      return !has || !r.values.includes(value!);
  }
}

/** Whether labels satisfy every requirement of a parsed selector. */
export function matchesSelector(labels: Readonly<Record<string, string>>, requirements: readonly Requirement[]): boolean {
  return requirements.every((r) => matchesRequirement(labels, r));
}
