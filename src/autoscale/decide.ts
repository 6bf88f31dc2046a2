/**
 * The autoscaler's decision: from one reading of the query (a value, or why there is none), the
 * size in force and its bounds, the settings and the previous state, the next state and what to
 * do. Pure: no I/O, no clock (time is `now`), so every rule is tested with plain values.
 *
 * The rules (README.md, "Decision rules"):
 * - recommendation = ceil(value / targetPerInstance), at least 0;
 * - up: at once to the recommendation, unless a scale-up happened within scaleUpCooldown;
 * - down: only to the highest recommendation of the last scaleDownCooldown (the stabilisation
 *   window, as Kubernetes' HPA does), only when scaleDownCooldown has passed since the last
 *   change of size, and by at most maxStepDown at once (at least 1);
 * - always within floor..max (the floor: `min`, raised by the schedule in force);
 * - an operator's size counts as a change of size for the cooldowns: both run from it (it is
 *   respected that long in either direction);
 * - a failed query, no sample, NaN or ±Inf: the size stays, `blocked` is set (since the first
 *   failure) and cleared by the next good answer.
 */
import { formatDuration, type AutoscaleSpec, type Quantity } from '../config/index.js';
import type { AutoscaleState } from '../state/index.js';

/** The recommendations kept (the state's schema bound). */
export const MAX_RECOMMENDATIONS = 4_096;

/** The longest text the state holds (its schema's bound on `decision` and `blocked.message`). */
export const MAX_TEXT = 2_048;

/** `text`, cut to MAX_TEXT characters (a long URL and Prometheus's error text can exceed it). */
const clip = (text: string): string => (text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text);

/** The largest size a recommendation can be (the config's bound on a size). */
const MAX_SIZE = 100_000;

/** Relative slack for ceil(value / target): 400 / 200 is 2, not 3 because of a rounding error. */
const EPSILON = 1e-9;

/** One reading of the query: its value, or why there is none. */
export type Reading = { ok: true; value: number } | { ok: false; message: string };

export type AutoscaleSettings = Pick<AutoscaleSpec, 'targetPerInstance' | 'scaleUpCooldownMs' | 'scaleDownCooldownMs' | 'maxStepDown'>;

export interface AutoscaleInputs {
  reading: Reading;
  /** The size in force (awake). */
  current: number;
  /** The lowest and highest size allowed now. */
  floor: number;
  max: number;
  settings: AutoscaleSettings;
  /** When an operator set the size in force, if one did (null: autoscale or the config set it). */
  setByOthersAt: number | null;
  /** Whether the size in force is autoscale's (before the floor and max). */
  autoscaleInForce: boolean;
  previous: AutoscaleState | null;
  now: number;
}

export interface SizeChange {
  from: number;
  to: number;
  direction: 'up' | 'down';
}

export interface AutoscaleOutcome {
  /** The state to record. */
  state: AutoscaleState;
  /** The size to set, when it changes. */
  change: SizeChange | null;
  /** Autoscale became blocked, or could act again. */
  blockTransition: 'blocked' | 'resumed' | null;
  /** The raw recommendation (null without a value). */
  recommended: number | null;
  /** One sentence: the value, the recommendation, the clamps and cooldowns, what was decided. */
  decision: string;
  /** The decision without its verb ("value 640 / 100 per instance: 7; ..."; the reason a query failed). */
  why: string;
}

export const EMPTY_AUTOSCALE_STATE: AutoscaleState = {
  size: null,
  at: null,
  lastScaleUpAt: null,
  lastScaleDownAt: null,
  recommendations: [],
  last: null,
  blocked: null,
};

const iso = (ms: number): string => new Date(ms).toISOString();

/** A number as the decision shows it: at most 6 significant digits. */
export function formatValue(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6)));
}

/** ceil(value / target), within 0..100000; a tiny relative slack absorbs floating-point error. */
export function recommendSize(value: number, targetPerInstance: number): number {
  const ratio = value / targetPerInstance;
  if (!(ratio > 0)) return 0;
  return Math.min(MAX_SIZE, Math.ceil(ratio * (1 - EPSILON)));
}

/** The most a scale-down from `current` removes at once: the count, or ceil(percent × current); at least 1. */
export function maxStepDownOf(q: Quantity, current: number): number {
  const n = 'count' in q ? q.count : Math.ceil((q.percent / 100) * current);
  return Math.max(1, n);
}

const latest = (...times: Array<number | null>): number | null => {
  let out: number | null = null;
  for (const t of times) if (t !== null && (out === null || t > out)) out = t;
  return out;
};

const parsed = (at: string | null): number | null => (at === null ? null : Date.parse(at));

/**
 * The recommendations that can still matter, with `next` added: those within the window, and of
 * those only the ones no later recommendation equals or exceeds (a later one stays in the window
 * longer, so the highest over any later window is the same). Oldest first, strictly decreasing.
 */
export function keepRecommendations(previous: AutoscaleState['recommendations'], windowMs: number, now: number, next: { at: string; size: number } | null): AutoscaleState['recommendations'] {
  const kept = previous.filter((r) => {
    const at = Date.parse(r.at);
    return at > now - windowMs && at <= now;
  });
  if (next) {
    while (kept.length > 0 && kept[kept.length - 1]!.size <= next.size) kept.pop();
    kept.push(next);
  }
  return kept.length > MAX_RECOMMENDATIONS ? kept.slice(kept.length - MAX_RECOMMENDATIONS) : kept;
}

/**
 * Autoscale's size when it does not change the size: when a bound (a schedule's floor, a lower
 * max) holds the size in force away from autoscale's own, the size in force — so that when the
 * bound moves back the size follows the rules (steps, cooldowns, also while blocked), not a jump.
 * The time of the decision is kept: taking the size in force is not a change.
 */
function adopted(input: AutoscaleInputs, prev: AutoscaleState): number | null {
  return input.autoscaleInForce && prev.size !== null ? input.current : prev.size;
}

/** The next state and what to do (see the module comment). */
export function decideAutoscale(input: AutoscaleInputs): AutoscaleOutcome {
  const { reading, current, floor, max, settings, now } = input;
  const prev = input.previous ?? EMPTY_AUTOSCALE_STATE;
  const at = iso(now);
  const window = settings.scaleDownCooldownMs;

  if (!reading.ok) {
    const blocked = { message: clip(reading.message), since: prev.blocked?.since ?? at };
    const decision = clip(`size kept at ${current}: ${reading.message}`);
    return {
      state: { ...prev, size: adopted(input, prev), recommendations: keepRecommendations(prev.recommendations, window, now, null), last: { at, value: null, recommended: null, decision }, blocked },
      change: null,
      blockTransition: prev.blocked ? null : 'blocked',
      recommended: null,
      decision,
      why: reading.message,
    };
  }

  const raw = recommendSize(reading.value, settings.targetPerInstance);
  const recommendations = keepRecommendations(prev.recommendations, window, now, { at, size: raw });
  const stabilised = recommendations[0]!.size;
  const why: string[] = [`value ${formatValue(reading.value)} / ${formatValue(settings.targetPerInstance)} per instance: ${raw}`];
  if (stabilised > raw) why.push(`highest in the last ${formatDuration(window)}: ${stabilised}`);

  // Up to the recommendation now; down only to the highest of the window.
  const wanted = raw > current ? raw : Math.min(stabilised, current);
  const bounded = Math.min(max, Math.max(floor, wanted));
  if (bounded > wanted) why.push(`raised to the floor ${floor}`);
  else if (bounded < wanted) why.push(`lowered to max ${max}`);

  const lastUp = latest(parsed(prev.lastScaleUpAt), input.setByOthersAt);
  const lastDown = latest(parsed(prev.lastScaleDownAt), input.setByOthersAt);
  const lastChange = latest(lastUp, lastDown);
  let next = current;
  if (bounded > current) {
    const until = lastUp === null ? null : lastUp + settings.scaleUpCooldownMs;
    if (until !== null && now < until) why.push(`scale-up cooldown until ${iso(until)}`);
    else next = bounded;
  } else if (bounded < current) {
    const until = lastChange === null ? null : lastChange + settings.scaleDownCooldownMs;
    if (until !== null && now < until) {
      why.push(`scale-down cooldown until ${iso(until)}`);
    } else {
      const step = maxStepDownOf(settings.maxStepDown, current);
      next = Math.max(bounded, current - step);
      if (next > bounded) why.push(`at most ${step} down at once`);
    }
  }

  const change: SizeChange | null = next === current ? null : { from: current, to: next, direction: next > current ? 'up' : 'down' };
  const verb = change ? `scaled ${change.direction} ${current} -> ${next}` : `size kept at ${current}`;
  const decision = clip(`${verb}: ${why.join('; ')}`);
  const state: AutoscaleState = {
    ...prev,
    recommendations,
    last: { at, value: reading.value, recommended: raw, decision },
    blocked: null,
  };
  if (change) {
    state.size = next;
    state.at = at;
    if (change.direction === 'up') state.lastScaleUpAt = at;
    else state.lastScaleDownAt = at;
  } else {
    state.size = adopted(input, prev);
  }
  return { state, change, blockTransition: prev.blocked ? 'resumed' : null, recommended: raw, decision, why: why.join('; ') };
}
