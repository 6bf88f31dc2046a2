/** Output helpers: aligned tables, relative ages, JSON. */
import { CliError, EXIT } from './client.js';

export type OutputFormat = 'table' | 'json' | 'wide';

export function parseOutput(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table') return 'table';
  if (value === 'json' || value === 'wide') return value;
  throw new CliError(`-o: unknown output format "${value}" (table, wide or json)`, EXIT.usage);
}

/** Renders rows as a table with upper-case headers, columns separated by 3 spaces (kubectl style). */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ').trimEnd()).join('\n');
}

/** "3s", "5m", "2h", "4d" since `iso`, relative to `now` (ms). */
export function age(iso: string | null, now: number): string {
  if (!iso) return '-';
  const ms = now - Date.parse(iso);
  return duration(ms);
}

/** "in 45s" / "45s ago" for a deadline. */
export function until(iso: string | null, now: number): string {
  if (!iso) return '-';
  const ms = Date.parse(iso) - now;
  return ms >= 0 ? `in ${duration(ms)}` : `${duration(-ms)} ago`;
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.round(h / 24)}d`;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
