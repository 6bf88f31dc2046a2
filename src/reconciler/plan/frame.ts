/**
 * What every phase of the planner reads: the input, and the values derived from it once (the
 * group's size and timeouts, protection and holds in force). Plus the small pieces several phases
 * share: the drain-or-delete decision, the oldest-first order, the budget's block.
 */
import { NO_DISRUPTION_LIMITS, type DisruptionSettings } from '../../config/index.js';
import { Priority } from '../../queue/priority.js';
import type { InstanceRecord } from '../../store/types.js';
import type { BudgetTracker } from '../disruption.js';
import { HEALTH_REASONS, INVOLUNTARY_REASONS, ROTATION_REASONS, VOLUNTARY_REASONS, isOneOf, type DrainReason, type RotationReason, type VoluntaryReason } from '../reasons.js';
import type { Block, PlanAction, PlanInput } from './types.js';

export interface PlanFrame {
  readonly input: PlanInput;
  readonly now: number;
  readonly size: number;
  readonly maxSurge: number;
  readonly drainTimeoutMs: number;
  readonly startupTimeoutMs: number;
  /** Silence after which a running instance is unhealthy: interval × threshold. */
  readonly staleAfterMs: number;
  /** The end of the grace after the reconciler began observing (start or leadership win). */
  readonly graceEnds: number;
  readonly disruption: DisruptionSettings;
  /** Protection in force for an instance, or null. */
  protectedUntil(id: string): number | null;
  /** A rotation hold (after a cancel) in force for an instance, or null. */
  heldUntil(id: string): number | null;
  /** An operator drain request forced past the budget. */
  forcedDrain(i: InstanceRecord): boolean;
}

export function frameOf(input: PlanInput): PlanFrame {
  const { settings, shard, now } = input;
  const staleAfterMs = shard.healthCheckIntervalMs * shard.missedHealthThreshold;
  const inForce = (map: ReadonlyMap<string, number> | undefined, id: string): number | null => {
    const until = map?.get(id);
    return until !== undefined && until > now ? until : null;
  };
  return {
    input,
    now,
    size: settings?.size ?? 0,
    maxSurge: settings?.maxSurge ?? 0,
    drainTimeoutMs: settings?.drainTimeoutMs ?? shard.defaultDrainTimeoutMs,
    startupTimeoutMs: settings?.startupTimeoutMs ?? Number.POSITIVE_INFINITY,
    staleAfterMs,
    graceEnds: input.observingSince + staleAfterMs,
    disruption: settings?.disruption ?? NO_DISRUPTION_LIMITS,
    protectedUntil: (id) => inForce(input.protectedUntil, id),
    heldUntil: (id) => inForce(input.rotationHolds, id),
    forcedDrain: (i) => input.drainRequests?.get(i.id)?.force === true,
  };
}

export const ms = (d: Date | null): number | null => (d ? d.getTime() : null);

export function isHealthyReported(i: InstanceRecord): boolean {
  return i.healthAt !== null;
}

/**
 * Whether a launch hook keeps an instance out of service: pending (nobody completed it yet) or
 * abandoned (it is replaced). Such an instance counts as a pending one does — toward the size,
 * the surge cap and, as a rotation's replacement not yet in service, the budgets — but never as
 * in service, never as a rotation's healthy replacement, and is not due for rotation itself.
 */
export function heldByLaunchHook(i: Pick<InstanceRecord, 'launchHook'>): boolean {
  return i.launchHook === 'pending' || i.launchHook === 'abandoned';
}

/** In service: running, reported health, and no launch hook holds it. */
export function servesNow(i: InstanceRecord): boolean {
  return i.status === 'running' && isHealthyReported(i) && !heldByLaunchHook(i);
}

/**
 * Since when an instance has been in service, or null: its first health report, or the
 * completion of its launch hook when that came later.
 */
export function inServiceSince(i: InstanceRecord): number | null {
  if (heldByLaunchHook(i)) return null;
  const first = ms(i.firstHealthAt);
  const hook = i.launchHook === 'continued' ? ms(i.launchHookAt) : null;
  return first === null ? null : Math.max(first, hook ?? first);
}

/** When a pending launch hook times out: its timeout after the provider confirmed the create. */
export function launchHookDeadline(i: InstanceRecord, timeoutMs: number): number {
  return (ms(i.confirmedAt) ?? i.createdAt.getTime()) + timeoutMs;
}

export const INVOLUNTARY: ReadonlySet<string> = new Set<string>(INVOLUNTARY_REASONS);
export const HEALTH: ReadonlySet<string> = new Set<string>(HEALTH_REASONS);

export function isRotationReason(reason: string | null | undefined): reason is RotationReason {
  return isOneOf(ROTATION_REASONS, reason);
}

export function isVoluntary(reason: string | null | undefined): reason is VoluntaryReason {
  return isOneOf(VOLUNTARY_REASONS, reason);
}

/** Whether an instance is (or was) replaced for its health. */
export function leftForHealth(i: Pick<InstanceRecord, 'drainReason' | 'deleteReason'>): boolean {
  return i.drainReason === 'unhealthy' || HEALTH.has(i.deleteReason ?? '');
}

/** The earliest of some times still to come (null: none). */
export function earliest(now: number, ...times: ReadonlyArray<number | null | undefined>): number | null {
  let best: number | null = null;
  for (const t of times) if (t !== null && t !== undefined && t > now && (best === null || t < best)) best = t;
  return best;
}

/** Ties broken the same way everywhere: older first, then by id. */
export function olderFirst(a: InstanceRecord, b: InstanceRecord): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * An instance leaving for `reason`: drained until `deadlineMs`, or deleted at once when that
 * deadline is already here (a drain timeout of 0). The wake-up is the drain's deadline.
 */
export function drainOrDelete(
  now: number,
  inst: InstanceRecord,
  reason: DrainReason,
  deadlineMs: number,
  unhealthyAt: number | null,
  message: string,
): { action: PlanAction; wakeAt: number | null } {
  if (deadlineMs <= now) {
    return { action: { kind: 'delete', instanceId: inst.id, reason, priority: Priority.urgent, message: `${message}; drain timeout is 0s, deleting at once` }, wakeAt: null };
  }
  return {
    action: { kind: 'drain', instanceId: inst.id, reason, deadline: new Date(deadlineMs), unhealthyAt: unhealthyAt === null ? null : new Date(unhealthyAt), message },
    wakeAt: deadlineMs,
  };
}

/** The block of a disruption that waits because its budget has no room now. */
export function budgetBlock(budgets: BudgetTracker, reason: VoluntaryReason, instanceId: string, what: string): Block {
  const b = budgets.reason(reason);
  return {
    code: 'BudgetExhausted',
    instanceId,
    message: `${what} waits: ${b.limitedBy ?? 'budget'} allows no more disruption now (${b.used} disrupted)`,
    ...(b.until ? { until: b.until } : {}),
  };
}

/** Collects a phase's result as it is built (local to one phase). */
export class PhaseBuilder {
  readonly actions: PlanAction[] = [];
  readonly blocked: Block[] = [];
  readonly leaving = new Map<string, string>();
  private wake: number | null = null;
  private silence: number | null = null;

  constructor(private readonly now: number) {}

  wakeAt(t: number | null | undefined): void {
    this.wake = earliest(this.now, this.wake, t);
  }

  /**
   * A running instance's last health report goes stale at `t`. A wake-up of its own kind
   * (`Plan.silenceWake`): the reconciler can tell whether any report has gone stale from the
   * store, without a plan.
   */
  silentAt(t: number): void {
    this.silence = earliest(this.now, this.silence, t);
  }

  leave(inst: InstanceRecord, reason: DrainReason, deadlineMs: number, unhealthyAt: number | null, message: string): void {
    const { action, wakeAt } = drainOrDelete(this.now, inst, reason, deadlineMs, unhealthyAt, message);
    this.leaving.set(inst.id, reason);
    this.actions.push(action);
    this.wakeAt(wakeAt);
  }

  result(): { actions: PlanAction[]; blocked: Block[]; wakeAt: number | null; silenceWakeAt: number | null; leaving: ReadonlyMap<string, string> } {
    return { actions: this.actions, blocked: this.blocked, wakeAt: this.wake, silenceWakeAt: this.silence, leaving: this.leaving };
  }
}
