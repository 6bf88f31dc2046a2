/**
 * The checker's own answer to "what size is this group at now?" (README.md, "Sizes that follow
 * the clock"), worked out from the world's model, not by the reconciler's sizing code:
 *
 * - the schedule that fired last, at or after the config's size was set (the start of the run:
 *   the simulated operator never changes the size of a group that has schedules), sets the size;
 *   two firing at once: the later in the list. The fire times come from the checker's own cron
 *   reading (windows.ts: Vixie cron's rule for times the clocks skip or repeat);
 * - else the config's size;
 * - for a group that autoscales (it has no schedules), the size its last audited decision set
 *   (`size A -> B`), else the config's;
 * - kept within min..max; 0 while the group's tenant sleeps (from the operator's sleep until its
 *   wake, or its `until`).
 */
import type { ScheduleDraw, SizingDraw } from './scenario.js';
import { openings } from './windows.js';

const MINUTE = 60_000;

/** An autoscaled group's size as its last audited decision set it (null: none yet, the config's). */
export interface AutoscaledSize {
  size: number | null;
  at: number | null;
}

/** A tenant's sleep as the operator asked for it. */
export interface SleepModel {
  at: number;
  /** null: until woken. */
  until: number | null;
}

/** The latest fire time of `schedule` in [from, now], or null. */
function lastFire(schedule: ScheduleDraw, from: number, now: number): number | null {
  // A window of one minute per fire: its openings are the fire times.
  const times = openings({ schedule: schedule.cron, durationMs: MINUTE, timezone: schedule.timezone }, from, now + 1);
  return times.length > 0 ? (times[times.length - 1] ?? null) : null;
}

/** The schedule in force at `now` (fired at or after `since`), or null. */
export function scheduleInForce(schedules: readonly ScheduleDraw[], since: number, now: number): { schedule: ScheduleDraw; at: number } | null {
  let best: { schedule: ScheduleDraw; at: number } | null = null;
  for (const schedule of schedules) {
    const at = lastFire(schedule, since, now);
    if (at !== null && (best === null || at >= best.at)) best = { schedule, at };
  }
  return best;
}

/** Whether a sleep holds at `now`. */
export function asleep(sleep: SleepModel | undefined, now: number): boolean {
  return sleep !== undefined && sleep.at <= now && (sleep.until === null || now < sleep.until);
}

/** The size in force at `now` (see the module comment), and since when it has been (what set it last: a fire, a sleep, a wake). */
export function sizeInForce(
  configSize: number,
  sizing: SizingDraw | null,
  schedulesOn: boolean,
  configSince: number,
  sleep: SleepModel | undefined,
  wokenAt: number | undefined,
  now: number,
  autoscaled: AutoscaledSize | null = null,
): { size: number; since: number } {
  if (sleep && asleep(sleep, now)) return { size: 0, since: sleep.at };
  // Awake since: a wake, or a sleep whose `until` has passed.
  const awakeSince = Math.max(wokenAt ?? Number.NEGATIVE_INFINITY, sleep?.until ?? Number.NEGATIVE_INFINITY);
  if (!sizing) return { size: configSize, since: Math.max(configSince, awakeSince) };
  if (autoscaled) {
    // The autoscaler's last audited size (it decides within min..max; invariant 14 checks that).
    const size = autoscaled.size ?? configSize;
    return { size: Math.min(sizing.max, Math.max(sizing.min, size)), since: Math.max(autoscaled.at ?? configSince, awakeSince) };
  }
  const fired = schedulesOn ? scheduleInForce(sizing.schedules, configSince, now) : null;
  const size = fired ? fired.schedule.size : configSize;
  return { size: Math.min(sizing.max, Math.max(sizing.min, size)), since: Math.max(fired ? fired.at : configSince, awakeSince) };
}
