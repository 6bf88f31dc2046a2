/**
 * Durations in config are strings such as "500ms", "90s", "5m", "2h", "21d" or a sum of them
 * ("1h30m"). Zero may be written "0", "0s" or 0.
 */
const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/** Parses a duration; returns milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string | number): number | null {
  if (typeof text === 'number') return text === 0 ? 0 : null;
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  if (trimmed === '') return null;
  PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (;;) {
    const match = PART.exec(trimmed);
    if (!match) break;
    const [whole, amount, unit] = match;
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN);
    consumed += whole.length;
  }
  if (consumed !== trimmed.length || !Number.isFinite(total)) return null;
  return Math.round(total);
}

/** Formats milliseconds the way config writes them ("1h30m", "90s", "250ms"). */
export function formatDuration(ms: number): string {
  let rest = Math.abs(Math.round(ms));
  if (rest === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
    ['ms', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return sign + parts.join('');
}
