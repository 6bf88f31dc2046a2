/**
 * Helpers for the ops files' tests (test/deploy): the metric names a PromQL expression reads, and
 * the metric names a real Drover server exports.
 */
import { TestServer } from '../helpers/server-harness.js';
import { freePort } from '../e2e/process-harness.js';

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan', 'atan2']);

/**
 * The metric names `expr` selects: what is left once strings, label matchers, ranges, grouping
 * clauses, function calls, keywords, numbers and Grafana variables are taken out.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const name = m[0];
    const isCall = /^\s*\(/.test(stripped.slice(m.index + name.length));
    if (!isCall && !KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/**
 * The sample names a `/metrics` text declares: each `# TYPE` line's name, with `_bucket`, `_sum`
 * and `_count` for a histogram (`_sum`, `_count` for a summary) — so a labelled counter that
 * nothing has incremented yet still counts as exported.
 */
export function exportedNames(metricsText: string): Set<string> {
  const names = new Set<string>();
  for (const m of metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

/**
 * The `/metrics` text of a real server with a plain group and an autoscaled one (whose Prometheus
 * does not answer, so the autoscale metrics have values too), as test/server/metrics.test.ts
 * scrapes it.
 */
export async function scrapeRealServer(): Promise<string> {
  const port = await freePort();
  const t = await new TestServer({
    groups: {
      default: {
        web: { size: 1, template: 'web' },
        api: { size: 1, template: 'web', autoscale: { prometheus: `http://127.0.0.1:${port}`, query: 'sum(up)', targetPerInstance: 10, queryTimeout: '1s' } },
      },
    },
  }).start();
  try {
    await t.settle();
    const deadline = Date.now() + 10_000;
    let text = '';
    while (Date.now() < deadline) {
      text = await (await fetch(`${t.url}/metrics`)).text();
      if (text.includes('drover_autoscale_blocked{')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return text;
  } finally {
    await t.close();
  }
}
