/**
 * Scenario generator: from a seed, a random fleet (tenants, groups, sizes, drain timeouts, surge,
 * expiry ages, shard and provider settings) and a random schedule of faults and operator actions.
 *
 * A schedule is plain data. Steps name their targets indirectly (a group by index, an instance by
 * a fraction into the group's live instances, resolved when the step runs), so any subset of a
 * schedule is still a valid schedule: the shrinker relies on that.
 */
import { Rng, hash32 } from './rng.js';

export const SEC = 1_000;
export const MIN = 60 * SEC;
export const HOUR = 60 * MIN;

/** Simulated time starts here unless a scenario draws another start. */
export const SIM_START = Date.UTC(2026, 0, 1);

export interface GroupSpec {
  tenant: string;
  group: string;
  size: number;
  template: string;
  drainTimeoutMs: number | null;
  maxSurge: number;
  startupTimeoutMs: number | null;
  eligibleAgeMs: number;
  forcedAgeMs: number;
  /** `disruption.cancelHold`: how long an instance whose drain was cancelled is left alone. */
  cancelHoldMs: number;
  /** `disruption.maxDrainTimeout`: no extension pushes a drain past its start + this. */
  maxDrainTimeoutMs: number | null;
  /** `disruption.budgets` (empty: none). */
  budgets: BudgetDraw[];
  /** `disruption.maxUnhealthy` (null: no health brake). */
  maxUnhealthy: QuantityDraw | null;
  /** `min`, `max` and `schedules` (null: none of them; the group keeps its configured size). */
  sizing?: SizingDraw | null;
}

/** A scheduled size: at each fire time of `cron` in `timezone`, the group's size becomes `size`. */
export interface ScheduleDraw {
  cron: string;
  timezone: string;
  size: number;
}

/** Target tracking on the world's simulated load (`targetPerInstance` 100), instead of schedules. */
export interface AutoscaleDraw {
  intervalMs: number;
  scaleUpCooldownMs: number;
  scaleDownCooldownMs: number;
  maxStepDown: QuantityDraw;
  /** The load the query answers at the start (size = ceil(load / 100)). */
  load: number;
}

/** A group's bounds, and its schedules or its autoscale (sizes all within min..max, as the config requires). */
export interface SizingDraw {
  min: number;
  max: number;
  schedules: ScheduleDraw[];
  autoscale: AutoscaleDraw | null;
}

/** The load unit of one instance: the simulated query's `targetPerInstance`. */
export const LOAD_PER_INSTANCE = 100;

/** A count, or a percentage of the group's size (rounded up). */
export type QuantityDraw = { count: number } | { percent: number };

export type VoluntaryReasonDraw = 'scaleDown' | 'expiry' | 'drift' | 'operator';
export const ALL_REASONS: readonly VoluntaryReasonDraw[] = ['scaleDown', 'expiry', 'drift', 'operator'];

/** A disruption budget as the config states it; `window` null = always in force. */
export interface BudgetDraw {
  max: QuantityDraw;
  /** null: every voluntary reason (the field is left out of the config). */
  reasons: VoluntaryReasonDraw[] | null;
  window: { schedule: string; durationMs: number; timezone: string } | null;
}

export interface ShardSpec {
  healthCheckIntervalMs: number;
  missedHealthThreshold: number;
  startupTimeoutMs: number;
  defaultDrainTimeoutMs: number;
  createRateLimitMs: number;
  defaultNoticeWindowMs: number;
  workers: number;
  resyncIntervalMs: number;
  maxAttempts: number;
}

export interface ProviderSpec {
  callTimeoutMs: number;
  /** The provider's API limit as configured for Drover (0: none). */
  maxCallsPerSecond: number;
  /** The SimProvider's own limit; above Drover's, so throttling means a burst. */
  simMaxCallsPerSecond: number;
  createLatencyMs: number;
  deleteLatencyMs: number;
  listLatencyMs: number;
}

export interface FleetSpec {
  shard: ShardSpec;
  provider: ProviderSpec;
  groups: GroupSpec[];
  /** Template names; each starts at version 1. */
  templates: string[];
  /** An agent boots (first health report) between 2 s and this long after its instance runs. */
  bootMaxMs: number;
  /** The reconciler's `firstHealthReplanIntervalMs` (0, or the server's 250 ms). */
  firstHealthReplanMs: number;
  /** When simulated time starts (some scenarios start hours before a daylight-saving change). */
  startMs: number;
}

/** Provider operations a fault may hit. Random schedules draw all but `setTags` (hand-written ones use it). */
export type SimOp = 'create' | 'delete' | 'status' | 'list' | 'setTags';
export type InstanceFault = 'crash' | 'stop' | 'vanish' | 'silence' | 'disconnect' | 'notice';
export type AckTarget = 'draining' | 'running' | 'otherGroup' | 'unknown' | 'deleted' | 'noGroup';
export type OperatorOp = 'drain' | 'drainForce' | 'cancel' | 'extend' | 'force';
/** What a protection aims at: an instance due for (or in) a rotation, or any instance in service. */
export type ProtectTarget = 'rotation' | 'any';
export type InvalidFlavor = 'negativeSize' | 'unknownTemplate' | 'badDuration' | 'unknownField' | 'expiryOrder' | 'badName' | 'notAnObject';

export type Action =
  | { kind: 'wait' }
  | { kind: 'providerFail'; op: SimOp; n: number; permanent: boolean }
  | { kind: 'providerSlow'; op: SimOp; n: number; delayMs: number }
  | { kind: 'instance'; fault: InstanceFault; group: number; pick: number; announce: boolean; durationMs: number | null }
  | { kind: 'ack'; target: AckTarget; group: number; pick: number; twice: boolean }
  | { kind: 'operator'; op: OperatorOp; group: number; pick: number; byMs: number }
  | { kind: 'protect'; group: number; pick: number; durationMs: number; target: ProtectTarget }
  | { kind: 'unprotect'; group: number; pick: number }
  | {
      kind: 'partition';
      group: number;
      fraction: number;
      announce: boolean;
      durationMs: number | null;
      /** With a brake: silence at least maxUnhealthy + `over` agents (a partition that trips it). */
      over?: number;
    }
  /**
   * A correlated failure: k live instances of a group stop in one instant, as a stopped VM or a
   * SIGSTOPped process does (the provider reports them `stopped`, their agents go silent), and
   * come back together after `durationMs` (null: not before the faults stop, when they are
   * left stopped, as a crash leaves an instance). With a brake, k = maxUnhealthy + `over`
   * (resolved when the step runs; at least 1); without one, `fraction` of the live instances.
   */
  | { kind: 'freeze'; group: number; over: number; fraction: number; pick: number; announce: boolean; durationMs: number | null }
  | { kind: 'scale'; group: number; size: number }
  | { kind: 'templateChange'; template: number }
  | { kind: 'switchTemplate'; group: number; template: number }
  | { kind: 'removeGroup'; group: number }
  | { kind: 'restoreGroup'; group: number }
  | { kind: 'invalidConfig'; flavor: InvalidFlavor; group: number }
  | { kind: 'loseLeadership' }
  | { kind: 'regainLeadership' }
  | { kind: 'crashRestart'; downtimeMs: number }
  /** An operator puts a tenant to sleep (its groups' size 0), for `untilMs` or until woken. */
  | { kind: 'sleep'; tenant: number; untilMs: number | null }
  | { kind: 'wake'; tenant: number }
  /** The load an autoscaled group's query answers from now on (`group`: an index into the autoscaled groups). */
  | { kind: 'load'; group: number; value: number }
  /** An autoscaled group's query fails (Prometheus down, no sample) for `durationMs`. */
  | { kind: 'loadFail'; group: number; durationMs: number };

export interface Step {
  /** Simulated time that passes before the action. */
  dtMs: number;
  action: Action;
}

export interface Scenario {
  seed: number;
  fleet: FleetSpec;
  steps: Step[];
}

export interface GenerateOptions {
  steps?: number;
  /**
   * Draw bounds, schedules and tenant sleep (default true). Off: the seed's scenario is the one it
   * had before they were simulated (the regression seeds pinned before then replay that way).
   */
  sizing?: boolean;
}

export const DEFAULT_STEPS = 150;

const GROUP_NAMES = ['web', 'api', 'batch', 'cache'];

function generateFleet(rng: Rng): FleetSpec {
  const healthCheckIntervalMs = rng.pick([30 * SEC, 60 * SEC]);
  const shard: ShardSpec = {
    healthCheckIntervalMs,
    missedHealthThreshold: rng.pick([2, 3]),
    startupTimeoutMs: rng.pick([3 * MIN, 5 * MIN]),
    defaultDrainTimeoutMs: rng.pick([0, 1 * MIN, 5 * MIN]),
    createRateLimitMs: rng.chance(0.7) ? 0 : rng.pick([2 * SEC, 10 * SEC]),
    defaultNoticeWindowMs: rng.pick([1 * MIN, 2 * MIN]),
    workers: rng.pick([1, 2, 16]),
    resyncIntervalMs: rng.pick([0, 5 * MIN, 10 * MIN]),
    maxAttempts: rng.pick([3, 5, 8]),
  };
  const rateLimited = rng.chance(0.2);
  const provider: ProviderSpec = {
    callTimeoutMs: rng.pick([20 * SEC, 60 * SEC]),
    maxCallsPerSecond: rateLimited ? rng.pick([2, 5]) : 0,
    simMaxCallsPerSecond: rateLimited ? 10 : rng.chance(0.1) ? 3 : 0,
    createLatencyMs: rng.pick([0, 1 * SEC, 5 * SEC, 15 * SEC]),
    deleteLatencyMs: rng.pick([0, 1 * SEC, 5 * SEC]),
    listLatencyMs: rng.chance(0.8) ? 0 : rng.pick([1 * SEC, 3 * SEC]),
  };
  const templates = ['a', 'b'];
  const tenants = rng.chance(0.6) ? ['t0'] : ['t0', 't1'];
  const groupCount = rng.int(1, 3);
  const groups: GroupSpec[] = [];
  for (let i = 0; i < groupCount; i++) {
    const tenant = tenants[i % tenants.length] ?? 't0';
    const expiry = rng.chance(0.45);
    const eligibleAgeMs = expiry ? rng.pick([1 * HOUR, 2 * HOUR, 3 * HOUR]) : 0;
    const forcedAgeMs = expiry && rng.chance(0.7) ? eligibleAgeMs + rng.pick([30 * MIN, 1 * HOUR]) : expiry ? 0 : rng.chance(0.1) ? 2 * HOUR : 0;
    groups.push({
      tenant,
      group: GROUP_NAMES[i] ?? `g${i}`,
      size: rng.chance(0.1) ? 0 : rng.chance(0.15) ? rng.int(6, 8) : rng.int(1, 5),
      template: rng.pick(templates),
      drainTimeoutMs: rng.chance(0.2) ? null : rng.pick([0, 30 * SEC, 2 * MIN, 5 * MIN, 10 * MIN]),
      maxSurge: rng.chance(0.15) ? 0 : rng.pick([1, 1, 2]),
      startupTimeoutMs: rng.chance(0.5) ? null : rng.pick([2 * MIN, 4 * MIN]),
      eligibleAgeMs,
      forcedAgeMs,
      cancelHoldMs: rng.pick([5 * MIN, 15 * MIN]),
      maxDrainTimeoutMs: rng.chance(0.5) ? null : rng.pick([10 * MIN, 20 * MIN]),
      budgets: [],
      maxUnhealthy: null,
      sizing: null,
    });
  }
  return { shard, provider, groups, templates, bootMaxMs: rng.pick([20 * SEC, 60 * SEC, 90 * SEC]), firstHealthReplanMs: rng.pick([0, 250]), startMs: SIM_START };
}

// ---- disruption controls -------------------------------------------------------------------
//
// Drawn from a second stream (seeded by the seed), so that a seed's fleet and schedule are the
// ones it had before budgets, the brake and protection were simulated; these only add to them.

type Timezone = 'Europe/Berlin' | 'UTC' | 'America/New_York' | 'Asia/Kolkata';

/** The hour of the day at `ms` in `timezone` (0-23). */
function localHour(ms: number, timezone: string): number {
  const text = new Intl.DateTimeFormat('en-GB', { timeZone: timezone, hour: '2-digit', hourCycle: 'h23' }).format(new Date(ms));
  return Number(text) % 24;
}

/**
 * When a scenario starts: New Year, a few hours before the clocks go forward in Europe
 * (2026-03-29 01:00 UTC) or back (2026-10-25 01:00 UTC), or a June evening (midnight in UTC and
 * Berlin). A scenario lasts 3-4 simulated hours, so most of the spring and autumn ones cross the
 * change.
 */
function drawStart(d: Rng): number {
  const at = d.weighted({ newYear: 35, spring: 25, autumn: 25, june: 15 });
  const quarter = 15 * MIN;
  if (at === 'spring') return Date.UTC(2026, 2, 28, 21, 0) + d.int(0, 16) * quarter;
  if (at === 'autumn') return Date.UTC(2026, 9, 24, 21, 0) + d.int(0, 16) * quarter;
  if (at === 'june') return Date.UTC(2026, 5, 15, 20, 0) + d.int(0, 20) * quarter;
  return SIM_START;
}

function drawReasons(d: Rng): VoluntaryReasonDraw[] {
  const out = ALL_REASONS.filter(() => d.chance(0.5));
  return out.length > 0 ? out : [d.pick(ALL_REASONS)];
}

/**
 * A window: hourly, every two or every half hour, or daily at an hour near the scenario's start
 * in its time zone (so that it opens during the run; at 22:00-01:00 local it crosses midnight),
 * sometimes at 02:30 in Berlin (a time that does not exist on the spring change and happens
 * twice on the autumn one). Durations stay below the period: windows do not overlap.
 */
function drawWindow(d: Rng, startMs: number): { schedule: string; durationMs: number; timezone: string } {
  const timezone = d.weighted<Timezone>({ 'Europe/Berlin': 50, UTC: 20, 'America/New_York': 15, 'Asia/Kolkata': 15 });
  const kind = d.weighted({ hourly: 25, twoHourly: 15, halfHourly: 15, daily: 35, dstHour: 10 });
  switch (kind) {
    case 'hourly':
      return { schedule: `${d.pick([0, 15, 30, 45])} * * * *`, durationMs: d.pick([15, 20, 30, 40]) * MIN, timezone };
    case 'twoHourly':
      return { schedule: `${d.pick([0, 20, 40])} */2 * * *`, durationMs: d.pick([30, 45, 60, 90]) * MIN, timezone };
    case 'halfHourly': {
      const m = d.pick([0, 10, 20]);
      return { schedule: `${m},${m + 30} * * * *`, durationMs: d.pick([10, 15, 20]) * MIN, timezone };
    }
    case 'daily': {
      const hour = (localHour(startMs, timezone) + d.int(0, 3)) % 24;
      const days = d.chance(0.15) ? '1-5' : '*';
      return { schedule: `${d.pick([0, 15, 30, 45])} ${hour} * * ${days}`, durationMs: d.pick([1, 2, 3]) * HOUR, timezone };
    }
    case 'dstHour':
      return { schedule: '30 2 * * *', durationMs: d.pick([30 * MIN, 1 * HOUR, 2 * HOUR]), timezone: 'Europe/Berlin' };
  }
}

function drawBudget(d: Rng, startMs: number): BudgetDraw {
  if (d.chance(0.35)) {
    // Always in force: never 0 (that would hold its reasons for good, and convergence with them).
    const max: QuantityDraw = d.chance(0.6) ? { count: d.int(1, 3) } : { percent: d.pick([25, 50, 100]) };
    return { max, reasons: d.chance(0.5) ? null : drawReasons(d), window: null };
  }
  const max: QuantityDraw = d.chance(0.55) ? { count: 0 } : d.chance(0.55) ? { count: 1 } : { percent: 34 };
  const reasonKind = d.weighted({ rotations: 35, all: 25, subset: 40 });
  const reasons: VoluntaryReasonDraw[] | null = reasonKind === 'rotations' ? ['expiry', 'drift'] : reasonKind === 'all' ? null : drawReasons(d);
  return { max, reasons, window: drawWindow(d, startMs) };
}

/** Adds budgets, the health brake and the start time to a fleet. */
function drawDisruption(d: Rng, fleet: FleetSpec): void {
  fleet.startMs = drawStart(d);
  for (const g of fleet.groups) {
    if (!d.chance(0.55)) continue;
    const n = d.int(0, 3);
    for (let k = 0; k < n; k++) g.budgets.push(drawBudget(d, fleet.startMs));
    if (d.chance(0.6)) g.maxUnhealthy = d.chance(0.6) ? { count: d.pick([0, 1, 2]) } : { percent: d.pick([25, 50]) };
  }
}

/**
 * Operator protection and network partitions take the place of some of the schedule's waits
 * (drawn from the second stream, a fixed number of draws a step, so a shorter schedule is still
 * the start of the longer one).
 */
function drawExtra(d: Rng, fleet: FleetSpec, base: Action): Action {
  const replace = d.chance(0.6);
  const kind = d.weighted({ protect: 40, unprotect: 15, partition: 30 });
  const group = d.int(0, fleet.groups.length - 1);
  const pick = d.next();
  const protectMs = d.pick([2 * MIN, 10 * MIN, 30 * MIN, 1 * HOUR]);
  const target: ProtectTarget = d.chance(0.6) ? 'rotation' : 'any';
  const fraction = d.pick([0.5, 0.75, 1]);
  const partitionMs = d.chance(0.25) ? null : d.pick([2 * MIN, 5 * MIN, 10 * MIN]);
  const announce = d.chance(0.5);
  if (base.kind !== 'wait' || !replace) return base;
  switch (kind) {
    case 'protect':
      return { kind, group, pick, durationMs: protectMs, target };
    case 'unprotect':
      return { kind, group, pick };
    case 'partition':
      return { kind, group, fraction, announce, durationMs: partitionMs };
  }
}

/**
 * Correlated failures, from a third stream (seeded by the seed, a fixed number of draws a step),
 * so that the fleets and schedules the seeds had before stay as they were except where these
 * take a step's place: a wait that drawExtra left a wait becomes a freeze (30%), and a partition
 * in a group with a brake sometimes silences more agents than maxUnhealthy (40%).
 */
function drawCorrelated(c: Rng, fleet: FleetSpec, base: Action): Action {
  const freeze = c.chance(0.3);
  const braked = fleet.groups.map((g, i) => (g.maxUnhealthy ? i : -1)).filter((i) => i >= 0);
  const anyGroup = c.int(0, fleet.groups.length - 1);
  const group = braked.length > 0 && c.chance(0.8) ? c.pick(braked) : anyGroup;
  const over = c.pick([-1, 0, 1, 1, 2, 3]);
  const fraction = c.pick([0.25, 0.5, 0.75, 1]);
  const pick = c.next();
  const announce = c.chance(0.5);
  const durationMs = c.chance(0.15) ? null : c.pick([1 * MIN, 3 * MIN, 5 * MIN, 10 * MIN, 20 * MIN]);
  const partitionOver = c.chance(0.4) ? c.pick([1, 2]) : null;
  if (base.kind === 'wait' && freeze) return { kind: 'freeze', group, over, fraction, pick, announce, durationMs };
  if (base.kind === 'partition' && partitionOver !== null && fleet.groups[base.group]?.maxUnhealthy) return { ...base, over: partitionOver };
  return base;
}

// ---- sizing: bounds, schedules, tenant sleep ---------------------------------------------------
//
// From a fourth stream (seeded by the seed, a fixed number of draws per group and per step), so
// that the fleets and schedules seeds had before stay as they were, but for these.

/**
 * A schedule that fires during a 3-4 hour run: hourly or every 20 minutes in a zone, every two
 * hours, daily at an hour near the start in its zone, or at 02:30 in Berlin (a time the spring
 * change skips and the autumn one repeats).
 */
function drawSchedule(z: Rng, startMs: number, min: number, max: number): ScheduleDraw {
  const timezone = z.weighted<Timezone>({ 'Europe/Berlin': 50, UTC: 20, 'America/New_York': 15, 'Asia/Kolkata': 15 });
  const kind = z.weighted({ hourly: 30, thrice: 20, twoHourly: 15, daily: 25, dstHour: 10 });
  const size = z.int(min, max);
  const m = z.pick([0, 10, 15, 30, 45]);
  switch (kind) {
    case 'hourly':
      return { cron: `${m} * * * *`, timezone, size };
    case 'thrice':
      return { cron: `${m % 20},${(m % 20) + 20},${(m % 20) + 40} * * * *`, timezone, size };
    case 'twoHourly':
      return { cron: `${m} */2 * * *`, timezone, size };
    case 'daily':
      return { cron: `${m} ${(localHour(startMs, timezone) + z.int(0, 3)) % 24} * * *`, timezone, size };
    case 'dstHour':
      return { cron: '30 2 * * *', timezone: 'Europe/Berlin', size };
  }
}

function drawAutoscale(z: Rng, max: number): AutoscaleDraw {
  return {
    intervalMs: z.pick([30 * SEC, 60 * SEC]),
    scaleUpCooldownMs: z.pick([0, 1 * MIN, 3 * MIN]),
    scaleDownCooldownMs: z.pick([2 * MIN, 5 * MIN, 10 * MIN]),
    maxStepDown: z.pick<QuantityDraw>([{ count: 1 }, { percent: 25 }, { percent: 50 }]),
    load: z.int(0, max * LOAD_PER_INSTANCE + 50),
  };
}

/** Gives 35% of the groups bounds and one or two schedules; a third of those autoscale instead. */
function drawSizing(z: Rng, fleet: FleetSpec): void {
  for (const g of fleet.groups) {
    const sized = z.chance(0.35);
    const min = z.int(0, g.size);
    const max = g.size + z.int(0, 3);
    const count = z.int(1, 2);
    const schedules = [drawSchedule(z, fleet.startMs, min, max), drawSchedule(z, fleet.startMs, min, max)].slice(0, count);
    const autoscale = z.chance(0.35) ? drawAutoscale(z, max) : null;
    if (sized) g.sizing = { min, max, schedules: autoscale ? [] : schedules, autoscale };
  }
}

/** The groups of a fleet that autoscale (what a `load` step's `group` indexes). */
export function autoscaledGroups(fleet: FleetSpec): GroupSpec[] {
  return fleet.groups.filter((g) => g.sizing?.autoscale);
}

/** The tenants of a fleet, in the order their groups list them. */
export function tenantsOf(fleet: FleetSpec): string[] {
  return [...new Set(fleet.groups.map((g) => g.tenant))];
}

/**
 * Tenant sleep and wake take the place of some waits left (8% sleep, 6% wake); in a fleet with
 * autoscaled groups, load changes (12%) and failing queries (3%) too.
 */
function drawSleep(z: Rng, fleet: FleetSpec, base: Action): Action {
  const kind = z.weighted({ none: 71, sleep: 8, wake: 6, load: 12, loadFail: 3 });
  const tenant = z.int(0, tenantsOf(fleet).length - 1);
  const untilMs = z.chance(0.4) ? null : z.pick([5 * MIN, 20 * MIN, 1 * HOUR]);
  const autoscaled = autoscaledGroups(fleet);
  const group = z.int(0, Math.max(0, autoscaled.length - 1));
  const value = z.int(0, ((autoscaled[group]?.sizing?.max ?? 0) + 2) * LOAD_PER_INSTANCE);
  const failMs = z.pick([1 * MIN, 5 * MIN, 20 * MIN]);
  if (base.kind !== 'wait' || kind === 'none') return base;
  if (kind === 'sleep') return { kind, tenant, untilMs };
  if (kind === 'wake') return { kind, tenant };
  if (autoscaled.length === 0) return base;
  return kind === 'load' ? { kind, group, value } : { kind, group, durationMs: failMs };
}

function generateDt(rng: Rng): number {
  const band = rng.weighted({ short: 60, medium: 32, long: 8 });
  if (band === 'short') return rng.int(1, 30) * SEC;
  if (band === 'medium') return rng.int(30, 180) * SEC;
  return rng.int(3, 15) * MIN;
}

function generateAction(rng: Rng, fleet: FleetSpec): Action {
  const group = rng.int(0, fleet.groups.length - 1);
  const pick = rng.next();
  const kind = rng.weighted({
    wait: 22,
    providerFail: 8,
    providerSlow: 4,
    instance: 26,
    ack: 6,
    operator: 5,
    scale: 8,
    templateChange: 3,
    switchTemplate: 2,
    removeGroup: 1.5,
    restoreGroup: 2,
    invalidConfig: 2,
    loseLeadership: 2.5,
    regainLeadership: 4,
    crashRestart: 4,
  });
  switch (kind) {
    case 'wait':
      return { kind };
    case 'providerFail':
      return { kind, op: rng.pick<SimOp>(['create', 'create', 'delete', 'delete', 'status', 'list']), n: rng.int(1, 4), permanent: rng.chance(0.3) };
    case 'providerSlow':
      return { kind, op: rng.pick<SimOp>(['create', 'create', 'delete', 'status', 'list']), n: rng.int(1, 3), delayMs: rng.pick([3 * SEC, 10 * SEC, 90 * SEC]) };
    case 'instance': {
      const fault = rng.weighted<InstanceFault>({ crash: 5, stop: 3, vanish: 3, silence: 4, disconnect: 4, notice: 4 });
      const durationMs =
        fault === 'silence' || fault === 'disconnect'
          ? rng.chance(0.3)
            ? null
            : rng.pick([20 * SEC, 2 * MIN, 10 * MIN])
          : fault === 'notice'
            ? rng.chance(0.25)
              ? null
              : rng.pick([30 * SEC, 2 * MIN, 5 * MIN])
            : null;
      return { kind, fault, group, pick, announce: rng.chance(0.5), durationMs };
    }
    case 'ack':
      return { kind, target: rng.weighted<AckTarget>({ draining: 4, running: 2, otherGroup: 1, unknown: 1, deleted: 1, noGroup: 1 }), group, pick, twice: rng.chance(0.3) };
    case 'operator':
      return { kind, op: rng.weighted<OperatorOp>({ drain: 3, drainForce: 1, cancel: 3, extend: 2, force: 1 }), group, pick, byMs: rng.pick([1 * MIN, 5 * MIN, 15 * MIN]) };
    case 'scale':
      return { kind, group, size: rng.chance(0.1) ? 0 : rng.int(1, 8) };
    case 'templateChange':
      return { kind, template: rng.int(0, fleet.templates.length - 1) };
    case 'switchTemplate':
      return { kind, group, template: rng.int(0, fleet.templates.length - 1) };
    case 'removeGroup':
    case 'restoreGroup':
      return { kind, group };
    case 'invalidConfig':
      return {
        kind,
        group,
        flavor: rng.pick<InvalidFlavor>(['negativeSize', 'unknownTemplate', 'badDuration', 'unknownField', 'expiryOrder', 'badName', 'notAnObject']),
      };
    case 'loseLeadership':
    case 'regainLeadership':
      return { kind };
    case 'crashRestart':
      return { kind, downtimeMs: rng.chance(0.4) ? 0 : rng.pick([5 * SEC, 1 * MIN, 5 * MIN]) };
  }
}

/** The scenario of a seed: same seed, same scenario. */
export function generateScenario(seed: number, options: GenerateOptions = {}): Scenario {
  const rng = new Rng(seed);
  const fleet = generateFleet(rng);
  const extra = new Rng(hash32(seed, 'disruption'));
  drawDisruption(extra, fleet);
  const correlated = new Rng(hash32(seed, 'correlated'));
  const sizing = options.sizing === false ? null : new Rng(hash32(seed, 'sizing'));
  if (sizing) drawSizing(sizing, fleet);
  const count = options.steps ?? DEFAULT_STEPS;
  const steps: Step[] = [];
  for (let i = 0; i < count; i++) {
    const dtMs = generateDt(rng);
    const action = drawCorrelated(correlated, fleet, drawExtra(extra, fleet, generateAction(rng, fleet)));
    steps.push({ dtMs, action: sizing ? drawSleep(sizing, fleet, action) : action });
  }
  return { seed, fleet, steps };
}

/** One line for an action (the trace's step description). */
export function describeAction(action: Action, fleet: FleetSpec): string {
  const g = (i: number): string => {
    const spec = fleet.groups[i];
    return spec ? `${spec.tenant}/${spec.group}` : `group#${i}`;
  };
  switch (action.kind) {
    case 'wait':
      return 'wait';
    case 'providerFail':
      return `provider: next ${action.n} ${action.op} call(s) fail${action.permanent ? ' permanently' : ''}`;
    case 'providerSlow':
      return `provider: next ${action.n} ${action.op} call(s) take ${action.delayMs / SEC}s longer`;
    case 'instance':
      return `${action.fault} an instance of ${g(action.group)} (pick ${action.pick.toFixed(3)}${action.announce ? ', announced' : ''}${action.durationMs === null ? '' : `, ${action.durationMs / SEC}s`})`;
    case 'ack':
      return `drain ack for a ${action.target} instance of ${g(action.group)}${action.twice ? ' (twice)' : ''}`;
    case 'operator':
      return `operator: ${action.op}${action.op === 'extend' ? ` by ${action.byMs / SEC}s` : ''} an instance of ${g(action.group)}`;
    case 'protect':
      return `operator: protect ${action.target === 'rotation' ? 'a rotating or due' : 'an'} instance of ${g(action.group)} for ${action.durationMs / SEC}s`;
    case 'unprotect':
      return `operator: unprotect an instance of ${g(action.group)}`;
    case 'partition':
      return `partition: ${Math.round(action.fraction * 100)}% of ${g(action.group)}'s agents${action.over === undefined ? '' : ` (at least maxUnhealthy + ${action.over})`} silent${action.durationMs === null ? '' : ` for ${action.durationMs / SEC}s`}${action.announce ? ', disconnects reported' : ''}`;
    case 'freeze':
      return `freeze: maxUnhealthy ${action.over >= 0 ? '+' : '-'} ${Math.abs(action.over)} (or ${Math.round(action.fraction * 100)}%) of ${g(action.group)}'s instances stop at once${action.durationMs === null ? '' : `, back after ${action.durationMs / SEC}s`}${action.announce ? ', disconnects reported' : ''}`;
    case 'scale':
      return `config: ${g(action.group)} size ${action.size}`;
    case 'templateChange':
      return `config: template ${fleet.templates[action.template] ?? action.template} changes`;
    case 'switchTemplate':
      return `config: ${g(action.group)} uses template ${fleet.templates[action.template] ?? action.template}`;
    case 'removeGroup':
      return `config: ${g(action.group)} removed`;
    case 'restoreGroup':
      return `config: ${g(action.group)} restored`;
    case 'invalidConfig':
      return `config: invalid (${action.flavor})`;
    case 'loseLeadership':
      return 'leadership lost';
    case 'regainLeadership':
      return 'leadership regained';
    case 'crashRestart':
      return `reconciler crashes, restarts after ${action.downtimeMs / SEC}s`;
    case 'sleep':
      return `operator: tenant ${tenantsOf(fleet)[action.tenant] ?? action.tenant} sleeps${action.untilMs === null ? '' : ` for ${action.untilMs / SEC}s`}`;
    case 'wake':
      return `operator: tenant ${tenantsOf(fleet)[action.tenant] ?? action.tenant} wakes`;
    case 'load': {
      const g = autoscaledGroups(fleet)[action.group];
      return `load: ${g ? `${g.tenant}/${g.group}` : `autoscaled#${action.group}`} at ${action.value}`;
    }
    case 'loadFail': {
      const g = autoscaledGroups(fleet)[action.group];
      return `load: ${g ? `${g.tenant}/${g.group}` : `autoscaled#${action.group}`}'s query fails for ${action.durationMs / SEC}s`;
    }
  }
}
