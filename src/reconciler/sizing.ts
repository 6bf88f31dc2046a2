/**
 * What a group's size is now, and why: one pure function from (the group's sizing settings, the
 * operator's and the autoscaler's recorded decisions, a tenant's sleep, now) to a SizeDecision.
 * No I/O and no clock: the planner, the API, `explain` and the dashboard all read the same
 * answer, and a dry run at any `now` says what the size would be then.
 *
 * The rules, in the words the status pages use:
 * - The size is set by whichever came last: the config's `size` (from when the leader first saw
 *   it, or saw it change), a schedule firing, an operator's `PUT size`, or an autoscale decision.
 *   So an operator's size stands until the next schedule fires, and a schedule's until the next.
 *   An operator's size ends when the config's size changes (as before schedules existed).
 * - With `autoscale`, schedules do not set the size: the schedule in force raises the floor
 *   (`min`) for its period, and autoscale moves the size between that floor and `max`.
 * - The size is kept within min..max (a floor raised by a schedule included).
 * - A sleeping tenant's groups have a size of 0, whatever sets their size: waking restores it.
 *
 * A server that was down when a schedule fired applies it on start: the latest fire time is
 * computed from the schedule, not remembered.
 */
import { CronSchedule } from '../config/cron.js';
import type { GroupSizing, ScheduleSpec } from '../config/index.js';
import type { AutoscaleState } from '../state/index.js';

export type SizeSource = 'config' | 'schedule' | 'operator' | 'autoscale';

export interface SizingFacts {
  tenant: string;
  group: string;
  sizing: GroupSizing;
  /** When the config's size was first seen at its current value; null: not recorded yet (now). */
  configSince: number | null;
  /** An operator's size that still stands against the config (its base matches), or null. */
  operator: { size: number; at: number; by: string } | null;
  /** The tenant's sleep, or null when awake. A sleep whose `until` has passed is over. */
  sleep: { at: number; until: number | null; by: string } | null;
  /** The autoscaler's state (read only when the group has `autoscale`). */
  autoscale: AutoscaleState | null;
  now: number;
}

export interface ScheduleFire {
  index: number;
  name: string;
  cron: string;
  timezone: string;
  size: number;
  at: Date;
}

export interface SizeDecision {
  /** The size the group is reconciled to now. */
  size: number;
  /** Who set the size in force (a sleeping tenant's groups still say who set their awake size). */
  source: SizeSource;
  /** The size the source asked for, before min/max and the floor. */
  requested: number;
  /** Since when the source's size stands. */
  since: Date;
  /** Who asked, for an operator's size. */
  by: string | null;
  min: number;
  max: number;
  /** The lowest size allowed now: `min`, raised by the schedule in force when autoscale runs. */
  floor: number;
  /** The size when awake (equals `size` unless asleep). */
  awakeSize: number;
  /** The latest schedule that has fired, if any, and the next to fire. */
  schedule: ScheduleFire | null;
  nextSchedule: ScheduleFire | null;
  /** The tenant's sleep while it lasts. */
  sleeping: { since: Date; until: Date | null; by: string } | null;
  /** Autoscale's last word, when the group has autoscale. */
  autoscale: { blocked: { message: string; since: Date } | null; lastDecision: string | null; lastValue: number | null; lastAt: Date | null } | null;
  /** One sentence: what sets the size and why. */
  reason: string;
  /** When the answer changes by the passage of time alone (a schedule, the end of a sleep). */
  wakeAt: Date | null;
}

const schedules = new Map<string, CronSchedule>();

/** The CronSchedule of a schedule (kept: they are pure, and building one parses the pattern). */
function cronOf(spec: Pick<ScheduleSpec, 'cron' | 'timezone'>): CronSchedule {
  const key = `${spec.timezone}\u0000${spec.cron}`;
  let schedule = schedules.get(key);
  if (!schedule) {
    if (schedules.size >= 1_024) schedules.clear();
    schedule = new CronSchedule(spec.cron, spec.timezone);
    schedules.set(key, schedule);
  }
  return schedule;
}

/** The latest schedule to have fired at or before `now` (the later in the config on a tie), and the next to fire after it. */
export function schedulesAt(specs: readonly ScheduleSpec[], now: number): { last: ScheduleFire | null; next: ScheduleFire | null } {
  let last: ScheduleFire | null = null;
  let next: ScheduleFire | null = null;
  const at = new Date(now);
  for (const spec of specs) {
    const cron = cronOf(spec);
    const fired = cron.lastFire(at);
    if (fired && (!last || fired.getTime() >= last.at.getTime())) last = { ...spec, at: fired };
    const coming = cron.nextFire(at);
    if (coming && (!next || coming.getTime() < next.at.getTime())) next = { ...spec, at: coming };
  }
  return { last, next };
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The size of a group now, and why. Pure: same facts, same decision. */
export function decideSize(facts: SizingFacts): SizeDecision {
  const { sizing, now } = facts;
  const { last: schedule, next: nextSchedule } = schedulesAt(sizing.schedules, now);
  const autoscaled = sizing.autoscale !== null;

  // Who set the size last. Candidates in order of precedence on a tie (a later one wins).
  // An operator's size stands against the config's as long as the config's size is the one it
  // replaced (its `base`, checked by the caller): the config competes only when there is none.
  type Setter = { source: SizeSource; size: number; at: number; by: string | null };
  const setters: Setter[] = facts.operator ? [] : [{ source: 'config', size: sizing.size, at: facts.configSince ?? now, by: null }];
  if (schedule && !autoscaled) setters.push({ source: 'schedule', size: schedule.size, at: schedule.at.getTime(), by: null });
  const scaled = autoscaled ? facts.autoscale : null;
  if (scaled && scaled.size !== null && scaled.at !== null) setters.push({ source: 'autoscale', size: scaled.size, at: Date.parse(scaled.at), by: null });
  if (facts.operator) setters.push({ source: 'operator', size: facts.operator.size, at: facts.operator.at, by: facts.operator.by });
  let setter = setters[0]!;
  for (const s of setters) if (s.at >= setter.at) setter = s;

  const max = sizing.max;
  const floor = Math.min(max, autoscaled && schedule ? Math.max(sizing.min, schedule.size) : sizing.min);
  const awakeSize = Math.min(max, Math.max(floor, setter.size));
  const asleep = facts.sleep && (facts.sleep.until === null || now < facts.sleep.until) ? facts.sleep : null;

  const wakes = [nextSchedule?.at.getTime() ?? null, asleep?.until ?? null].filter((t): t is number => t !== null && t > now);
  const decision: Omit<SizeDecision, 'reason'> = {
    size: asleep ? 0 : awakeSize,
    source: setter.source,
    requested: setter.size,
    since: new Date(setter.at),
    by: setter.by,
    min: sizing.min,
    max,
    floor,
    awakeSize,
    schedule,
    nextSchedule,
    sleeping: asleep ? { since: new Date(asleep.at), until: asleep.until === null ? null : new Date(asleep.until), by: asleep.by } : null,
    autoscale: autoscaled
      ? {
          blocked: facts.autoscale?.blocked ? { message: facts.autoscale.blocked.message, since: new Date(facts.autoscale.blocked.since) } : null,
          lastDecision: facts.autoscale?.last?.decision ?? null,
          lastValue: facts.autoscale?.last?.value ?? null,
          lastAt: facts.autoscale?.last ? new Date(facts.autoscale.last.at) : null,
        }
      : null,
    wakeAt: wakes.length > 0 ? new Date(Math.min(...wakes)) : null,
  };
  return { ...decision, reason: describe(facts, decision) };
}

function describe(facts: SizingFacts, d: Omit<SizeDecision, 'reason'>): string {
  const parts: string[] = [];
  switch (d.source) {
    case 'config':
      parts.push(`the configured size ${d.requested}${facts.configSince === null ? '' : ` (in force since ${iso(d.since.getTime())})`}`);
      break;
    case 'schedule':
      parts.push(`schedule "${d.schedule!.name}" (${d.schedule!.cron}, ${d.schedule!.timezone}) set ${d.requested} at ${iso(d.since.getTime())}`);
      break;
    case 'operator':
      parts.push(`${d.by ?? 'an operator'} set ${d.requested} at ${iso(d.since.getTime())}`);
      break;
    case 'autoscale':
      parts.push(`autoscale set ${d.requested} at ${iso(d.since.getTime())}`);
      break;
  }
  if (d.requested < d.floor) {
    parts.push(
      d.floor > d.min && d.schedule
        ? `raised to ${d.floor}, the floor schedule "${d.schedule.name}" sets for autoscale`
        : `raised to min ${d.floor}`,
    );
  } else if (d.requested > d.max) {
    parts.push(`lowered to max ${d.max}`);
  } else if (facts.sizing.autoscale && d.floor > d.min && d.schedule) {
    parts.push(`floor ${d.floor} from schedule "${d.schedule.name}"`);
  }
  if (d.source === 'operator' && facts.sizing.schedules.length > 0 && !facts.sizing.autoscale) parts.push('it stands until the next schedule fires');
  if (d.nextSchedule) {
    parts.push(
      facts.sizing.autoscale
        ? `next schedule "${d.nextSchedule.name}" sets the floor to ${d.nextSchedule.size} at ${iso(d.nextSchedule.at.getTime())}`
        : `next schedule "${d.nextSchedule.name}" sets ${d.nextSchedule.size} at ${iso(d.nextSchedule.at.getTime())}`,
    );
  }
  if (d.sleeping) {
    const until = d.sleeping.until ? ` until ${iso(d.sleeping.until.getTime())}` : ' until woken';
    return `tenant ${facts.tenant} is asleep (since ${iso(d.sleeping.since.getTime())}, by ${d.sleeping.by})${until}: size 0; awake it would be ${d.awakeSize}: ${parts.join('; ')}`;
  }
  return parts.join('; ');
}
