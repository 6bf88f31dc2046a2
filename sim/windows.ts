/**
 * Budget windows as the checker computes them, by brute force and on its own: no cron library,
 * and nothing of src/config/cron.ts (the reconciler's implementation, which the checker judges).
 *
 * README.md ("Controlling disruption"): a budget with `schedule` (5-field cron, in `timezone`)
 * and `duration` applies inside its window, which opens at each time the schedule names and is
 * measured in elapsed time. To find the openings, this module steps through the minutes one by
 * one, asks `Intl.DateTimeFormat` what the wall clock in the zone says at each, and matches the
 * wall clock against the schedule.
 *
 * Wall times the clocks skip or repeat (daylight saving changes) follow Vixie cron, the
 * reference cron semantics: a schedule at a fixed time of day (no `*` in its minute or hour
 * field) whose time is skipped opens once, when the clocks have gone forward; one whose time
 * happens twice opens at the first only. A schedule with `*` in its minute or hour field runs by
 * the wall clock as it reads: skipped times do not open, repeated ones open each time.
 *
 * Windows that overlap or touch (one opening as another closes) are one window: from the first
 * opening of the run to the last close.
 */

export interface WindowSpec {
  schedule: string;
  durationMs: number;
  timezone: string;
}

const MINUTE = 60_000;
const DAY_MINUTES = 1440;
/** How far back a repeated wall time is looked for: no zone's clocks go back by more. */
const LONGEST_FOLD_MINUTES = 180;

// ---- the schedule ----------------------------------------------------------------------------

interface Field {
  values: ReadonlySet<number>;
  /** Written starting with `*` (or `?`): unrestricted in the day-of-month/day-of-week sense. */
  star: boolean;
  /** Contains a `*` anywhere (`*`, or `*` with a step): not a fixed time in Vixie's sense. */
  wildcard: boolean;
}

export interface Schedule {
  minute: Field;
  hour: Field;
  dayOfMonth: Field;
  month: Field;
  dayOfWeek: Field;
  /** A fixed time of day: no `*` in the minute or hour field (Vixie's rule for skipped and repeated times). */
  fixedTime: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

function parseField(text: string, min: number, max: number, names: readonly string[] = [], nameBase = 0): Field {
  const values = new Set<number>();
  const value = (s: string): number => {
    const named = names.indexOf(s.toUpperCase());
    const n = named >= 0 ? named + nameBase : Number(s);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`cron: ${s} is out of ${min}-${max}`);
    return n;
  };
  for (const item of text.split(',')) {
    const [range = '', stepText] = item.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new Error(`cron: bad step in ${item}`);
    let lo: number;
    let hi: number;
    if (range === '*' || range === '?') {
      lo = min;
      hi = max;
    } else if (range.includes('-')) {
      const [a = '', b = ''] = range.split('-');
      lo = value(a);
      hi = value(b);
    } else {
      lo = value(range);
      // `5/15`: from 5, every 15, to the end of the range.
      hi = stepText === undefined ? lo : max;
    }
    for (let v = lo; v <= hi; v += step) values.add(v);
  }
  return { values, star: text.startsWith('*') || text.startsWith('?'), wildcard: text.includes('*') };
}

export function parseSchedule(schedule: string): Schedule {
  const parts = schedule.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`cron: ${schedule} does not have 5 fields`);
  const [m = '', h = '', dom = '', mon = '', dow = ''] = parts;
  const dayOfWeek = parseField(dow, 0, 7, DAYS);
  // Sunday is 0 or 7.
  if (dayOfWeek.values.has(7)) dayOfWeek.values = new Set([...dayOfWeek.values, 0]);
  const minute = parseField(m, 0, 59);
  const hour = parseField(h, 0, 23);
  return {
    minute,
    hour,
    dayOfMonth: parseField(dom, 1, 31),
    month: parseField(mon, 1, 12, MONTHS, 1),
    dayOfWeek,
    fixedTime: !minute.wildcard && !hour.wildcard,
  };
}

/** Does a wall-clock minute (minutes since the epoch, read as UTC) match the schedule? */
function matches(s: Schedule, wallMinute: number): boolean {
  const d = new Date(wallMinute * MINUTE);
  if (!s.minute.values.has(d.getUTCMinutes()) || !s.hour.values.has(d.getUTCHours()) || !s.month.values.has(d.getUTCMonth() + 1)) return false;
  const dom = s.dayOfMonth.values.has(d.getUTCDate());
  const dow = s.dayOfWeek.values.has(d.getUTCDay());
  // Both days restricted: either one will do (cron's rule); otherwise both must match.
  if (!s.dayOfMonth.star && !s.dayOfWeek.star) return dom || dow;
  return dom && dow;
}

// ---- the wall clock in a zone, minute by minute ------------------------------------------------

const formatters = new Map<string, Intl.DateTimeFormat>();
/** Per zone and UTC day: the wall-clock minute (since the epoch, read as UTC) at each minute of the day. */
const wallDays = new Map<string, Float64Array>();

function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' });
    formatters.set(timezone, f);
  }
  return f;
}

/** What the wall clock in `timezone` reads at UTC minute `m`, as minutes since the epoch read as UTC. */
export function wallMinute(timezone: string, m: number): number {
  const day = Math.floor(m / DAY_MINUTES);
  const key = `${timezone}|${day}`;
  let walls = wallDays.get(key);
  if (!walls) {
    walls = new Float64Array(DAY_MINUTES);
    const f = formatter(timezone);
    for (let i = 0; i < DAY_MINUTES; i++) {
      const parts: Record<string, number> = {};
      for (const p of f.formatToParts(new Date((day * DAY_MINUTES + i) * MINUTE))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
      walls[i] = Date.UTC(parts.year ?? 0, (parts.month ?? 1) - 1, parts.day ?? 1, parts.hour ?? 0, parts.minute ?? 0) / MINUTE;
    }
    wallDays.set(key, walls);
  }
  return walls[m - day * DAY_MINUTES] ?? Number.NaN;
}

/** Does a window of `s` open at UTC minute `m`? */
function opensAt(s: Schedule, timezone: string, m: number): boolean {
  const wall = wallMinute(timezone, m);
  const before = wallMinute(timezone, m - 1);
  if (!s.fixedTime) return matches(s, wall);
  if (matches(s, wall)) {
    // A fixed time that happens twice: the first only.
    for (let k = 1; k <= LONGEST_FOLD_MINUTES; k++) if (wallMinute(timezone, m - k) === wall) return false;
    return true;
  }
  // The clocks went forward just now: a fixed time they skipped opens now.
  for (let skipped = before + 1; skipped < wall; skipped++) if (matches(s, skipped)) return true;
  return false;
}

// ---- windows -----------------------------------------------------------------------------------

const schedules = new Map<string, Schedule>();
/** Per window spec and UTC day: the minutes of that day at which a window opens. */
const openingDays = new Map<string, number[]>();

function scheduleOf(text: string): Schedule {
  let s = schedules.get(text);
  if (!s) {
    s = parseSchedule(text);
    schedules.set(text, s);
  }
  return s;
}

function openingsOfDay(spec: WindowSpec, day: number): number[] {
  const key = `${spec.schedule}|${spec.timezone}|${day}`;
  let out = openingDays.get(key);
  if (!out) {
    const s = scheduleOf(spec.schedule);
    out = [];
    for (let m = day * DAY_MINUTES; m < (day + 1) * DAY_MINUTES; m++) if (opensAt(s, spec.timezone, m)) out.push(m * MINUTE);
    openingDays.set(key, out);
  }
  return out;
}

/** The times (epoch ms) windows of `spec` open within [from, until), in order. */
export function openings(spec: WindowSpec, from: number, until: number): number[] {
  const out: number[] = [];
  for (let day = Math.floor(from / (DAY_MINUTES * MINUTE)); day * DAY_MINUTES * MINUTE < until; day++) {
    for (const t of openingsOfDay(spec, day)) if (t >= from && t < until) out.push(t);
  }
  return out;
}

export interface OpenWindow {
  /** When the run of overlapping or touching windows containing the instant began. */
  start: number;
  /** The latest opening at or before the instant (the window that contains it). */
  latest: number;
  /** When the run closes. */
  end: number;
}

/** How far a run of touching windows is followed either way (they never run for good in practice). */
const CHAIN_LIMIT_MS = 8 * 86_400_000;

/** The window of `spec` open at `t` (epoch ms), or null when none is. */
export function windowAt(spec: WindowSpec, t: number): OpenWindow | null {
  const d = spec.durationMs;
  // Openings that could contain t are in (t - d, t]; the latest one does if any does.
  const near = openings(spec, t - d + 1, t + 1);
  const latest = near[near.length - 1];
  if (latest === undefined) return null;
  let end = latest + d;
  // Later windows opening before this one closes extend it.
  for (let from = latest + 1; end - latest < CHAIN_LIMIT_MS; ) {
    const next = openings(spec, from, end + 1)[0];
    if (next === undefined) break;
    end = Math.max(end, next + d);
    from = next + 1;
  }
  // Earlier windows closing as or after this one opens began it.
  let start = latest;
  for (; latest - start < CHAIN_LIMIT_MS; ) {
    const before = openings(spec, start - d, start);
    const first = before[0];
    if (first === undefined) break;
    start = first;
  }
  return { start, latest, end };
}

/** How long, within [from, until), at least one of `specs` has a window open. */
export function openTime(specs: readonly WindowSpec[], from: number, until: number): number {
  const spans: Array<[number, number]> = [];
  for (const spec of specs) for (const s of openings(spec, from - spec.durationMs + 1, until)) spans.push([s, s + spec.durationMs]);
  spans.sort((a, b) => a[0] - b[0]);
  let total = 0;
  let reach = from;
  for (const [a, b] of spans) {
    const lo = Math.max(a, reach);
    const hi = Math.min(b, until);
    if (hi > lo) total += hi - lo;
    reach = Math.max(reach, b);
  }
  return total;
}
