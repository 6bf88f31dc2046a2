/**
 * The decision core: one pure function from (group settings, observed instances, now) to a plan
 * of actions, each with its reason. It performs no I/O and reads no clock; the executor applies
 * the plan, and `Reconciler.plan` returns it as a dry run.
 *
 * Vocabulary used below:
 * - live: not deleted (creating, running, draining, deleting) — what the surge cap counts.
 * - active: creating or running and not leaving — what serves, or will serve, the group.
 * - covered target: an active instance being rotated (operator, expiry, drift) whose replacement exists;
 *   it keeps serving, but does not count toward `size`, until its replacement reports healthy.
 * - counted: active minus covered targets — compared with `size`.
 */
import type { GroupSettings, VoluntaryReason } from '../config/index.js';
import { NO_DISRUPTION_LIMITS } from '../config/index.js';
import { isTerminalStatus } from '../providers/types.js';
import { Priority } from '../queue/priority.js';
import type { InstanceRecord } from '../store/types.js';
import { BudgetTracker, resolveQuantity, type ReasonBudget } from './disruption.js';
import { HEALTH_REASONS as HEALTH, INVOLUNTARY_REASONS as INVOLUNTARY, ROTATION_REASONS, VOLUNTARY_REASONS, isOneOf, type DrainReason, type RotationReason } from './reasons.js';

/** Why an instance is drained, and why it rotates: declared in reasons.ts. */
export type { DrainReason, RotationReason };

/** Reasons for which an instance leaves involuntarily; its replacement is urgent. */
export const INVOLUNTARY_REASONS: ReadonlySet<string> = new Set<string>(INVOLUNTARY);

/** Reasons an instance leaves for its health: what the health brake counts. */
export const HEALTH_REASONS: ReadonlySet<string> = new Set<string>(HEALTH);

/** Whether an instance is (or was) replaced for its health. */
function leftForHealth(i: Pick<InstanceRecord, 'drainReason' | 'deleteReason'>): boolean {
  return i.drainReason === 'unhealthy' || HEALTH_REASONS.has(i.deleteReason ?? '');
}

function isRotationReason(reason: string | null | undefined): reason is RotationReason {
  return isOneOf(ROTATION_REASONS, reason);
}

function isVoluntary(reason: string | null | undefined): reason is VoluntaryReason {
  return isOneOf(VOLUNTARY_REASONS, reason);
}

export type PlanAction =
  | { kind: 'create'; reason: string; replaces: string | null; priority: Priority; message: string }
  | { kind: 'dispatchCreate'; instanceId: string; priority: Priority; message: string }
  | { kind: 'cancelCreate'; instanceId: string; reason: string; message: string }
  | { kind: 'drain'; instanceId: string; reason: DrainReason; deadline: Date; unhealthyAt: Date | null; message: string }
  | { kind: 'delete'; instanceId: string; reason: string; priority: Priority; message: string }
  | { kind: 'dispatchDelete'; instanceId: string; message: string }
  | { kind: 'forget'; instanceId: string; reason: string; message: string }
  | { kind: 'check'; instanceId: string; cause: string; message: string };

export type BlockCode =
  | 'NotLeader'
  | 'SurgeCap'
  | 'RateLimited'
  | 'WaitingForHealthy'
  | 'DrainInProgress'
  | 'ProviderErrors'
  | 'BudgetExhausted'
  | 'ShortCircuit'
  | 'Protected'
  | 'RotationHeld'
  | 'RemovalPending'
  | 'HealthSettling';

export interface Block {
  code: BlockCode;
  message: string;
  instanceId?: string;
  /** The instances a block is about, when several (the brake's unhealthy ones). */
  instanceIds?: string[];
  since?: Date;
  until?: Date;
}

export interface GroupSummary {
  size: number;
  /** Instances at the provider or about to be (not deleted). */
  live: number;
  /** Running, reported healthy, not leaving. */
  inService: number;
  /** Being created or booting (never reported healthy), not leaving. */
  pending: number;
  draining: number;
  /** Judged or observed unhealthy (dead, silent, stopped), not yet deleted. */
  unhealthy: number;
  /** The surge cap: size + maxSurge. */
  maxLive: number;
  /** Disruption controls in force: budgets per voluntary reason and the health brake. */
  disruption: {
    budgets: Record<VoluntaryReason, ReasonBudget>;
    shortCircuited: boolean;
    maxUnhealthy: number | null;
    /** What the brake counts: unhealthy instances, and those recently replaced for health (unhealthyWindow). */
    brakeCount: number;
  };
}

export interface Plan {
  tenant: string;
  group: string;
  configured: boolean;
  actions: PlanAction[];
  blocked: Block[];
  /** When the plan's answer changes by the passage of time alone (a deadline, an age), if ever. */
  wakeAt: Date | null;
  summary: GroupSummary;
}

export interface ShardHealthSettings {
  healthCheckIntervalMs: number;
  missedHealthThreshold: number;
  defaultDrainTimeoutMs: number;
}

export interface PlanInput {
  tenant: string;
  group: string;
  /** The group's effective settings, or null when it is no longer configured (drain it to zero). */
  settings: GroupSettings | null;
  shard: ShardHealthSettings;
  /** The group's instances that are not deleted. */
  instances: readonly InstanceRecord[];
  /** Instances of the group deleted recently (to say what a new instance replaces). */
  departed?: readonly InstanceRecord[];
  /** Instances with a provider call in flight in this process (not to be dispatched again). */
  inFlight: { has(instanceId: string): boolean };
  now: number;
  /**
   * Since when health reports have been received. Silence before it is not held against an
   * instance: after a restart every agent gets one full health threshold to report.
   */
  observingSince: number;
  /** When set, creates are held for this reason (a permanent provider error). */
  createHold: string | null;
  /** When a hold ends by itself (a pause after retries ran out); null = on a change only. */
  createHoldUntil?: number | null;
  /** Provider attempts after which a step is given up. */
  maxAttempts: number;
  /** Instances protected from voluntary disruption, until the given epoch ms. */
  protectedUntil?: ReadonlyMap<string, number>;
  /** Instances whose rotation or operator drain was cancelled: not picked again until the given epoch ms. */
  rotationHolds?: ReadonlyMap<string, number>;
  /** Operator drain requests (replacement first); `force` ignores the budget. */
  drainRequests?: ReadonlyMap<string, { force: boolean }>;
  /**
   * For a group no longer configured: until when its removal waits (groupRemovalGrace). Until
   * then nothing new is done to it — no drain, no replacement — only work already under way
   * finishes; a config that brings the group back meanwhile loses nothing.
   */
  removalPendingUntil?: number | null;
}

const ms = (d: Date | null): number | null => (d ? d.getTime() : null);

function isHealthyReported(i: InstanceRecord): boolean {
  return i.healthAt !== null;
}

/** Plans one group. Pure: same input, same plan. */
export function planGroup(input: PlanInput): Plan {
  const { settings, shard, now } = input;
  const size = settings?.size ?? 0;
  const maxSurge = settings?.maxSurge ?? 0;
  const drainTimeoutMs = settings?.drainTimeoutMs ?? shard.defaultDrainTimeoutMs;
  const startupTimeoutMs = settings?.startupTimeoutMs ?? Number.POSITIVE_INFINITY;
  const staleAfterMs = shard.healthCheckIntervalMs * shard.missedHealthThreshold;
  const graceEnds = input.observingSince + staleAfterMs;

  const actions: PlanAction[] = [];
  const blocked: Block[] = [];
  let wake = Number.POSITIVE_INFINITY;
  const wakeAt = (t: number | null): void => {
    if (t !== null && t > now && t < wake) wake = t;
  };

  /** Instances that leave service in this plan, with their reason. */
  const leaving = new Map<string, string>();
  const forgotten = new Set<string>();
  /** Instances whose health report is overdue or that were judged unhealthy: no rotation counts on them. */
  const unwell = new Set<string>();
  let unhealthyCount = 0;
  let drainingCount = 0;

  const drainOrDelete = (inst: InstanceRecord, reason: DrainReason, deadlineMs: number, unhealthyAt: number | null, message: string): void => {
    leaving.set(inst.id, reason);
    if (deadlineMs <= now) {
      actions.push({ kind: 'delete', instanceId: inst.id, reason, priority: Priority.urgent, message: `${message}; drain timeout is 0s, deleting at once` });
    } else {
      actions.push({
        kind: 'drain',
        instanceId: inst.id,
        reason,
        deadline: new Date(deadlineMs),
        unhealthyAt: unhealthyAt === null ? null : new Date(unhealthyAt),
        message,
      });
      wakeAt(deadlineMs);
    }
  };

  const disruption = settings?.disruption ?? NO_DISRUPTION_LIMITS;
  /** Replacements and deletions for health reasons, applied unless the health brake is on. */
  /** `judgedAt`: when the instance was judged unhealthy (the settle delay runs from there). */
  const healthActions: Array<{ inst: InstanceRecord; reason: string; judgedAt: number; apply: () => void }> = [];
  /** Unhealthy live instances, by id: what the brake counts beside recent departures. */
  const unhealthyIds: string[] = [];
  const protectedUntil = (id: string): number | null => {
    const until = input.protectedUntil?.get(id);
    return until !== undefined && until > now ? until : null;
  };
  const heldUntil = (id: string): number | null => {
    const until = input.rotationHolds?.get(id);
    return until !== undefined && until > now ? until : null;
  };

  // ---- 1. Per-instance facts: dead, noticed, expired, silent, finished draining. ------------
  for (const inst of input.instances) {
    const observed = inst.providerStatus;
    const gone = observed === 'notFound';
    const healthAtMs = ms(inst.healthAt);
    const checkedAtMs = ms(inst.providerCheckedAt);
    // A health report after the provider's answer says the instance runs again (a stopped process
    // continued, a VM resumed): that answer is out of date.
    const reportedSinceCheck = healthAtMs !== null && checkedAtMs !== null && healthAtMs > checkedAtMs;
    const terminal = observed !== null && observed !== 'notFound' && isTerminalStatus(observed) && !reportedSinceCheck;

    if (inst.status === 'deleting') {
      leaving.set(inst.id, inst.deleteReason ?? 'delete');
      if (leftForHealth(inst)) {
        unhealthyCount++;
        unhealthyIds.push(inst.id);
      }
      if (gone) {
        actions.push({ kind: 'forget', instanceId: inst.id, reason: 'vanished', message: 'the provider no longer has it; delete complete' });
        forgotten.add(inst.id);
      } else if (!input.inFlight.has(inst.id)) {
        const due = ms(inst.nextAttemptAt);
        if (inst.attempts >= input.maxAttempts) {
          blocked.push({ code: 'ProviderErrors', instanceId: inst.id, message: `delete gave up after ${inst.attempts} attempts (${inst.lastError ?? 'error'}); retried at the next full reconcile` });
        } else if (due === null || due <= now) {
          actions.push({ kind: 'dispatchDelete', instanceId: inst.id, message: `deleting (${inst.deleteReason ?? 'delete'}), attempt ${inst.attempts + 1}` });
        } else {
          wakeAt(due);
          blocked.push({ code: 'ProviderErrors', instanceId: inst.id, message: `delete failed (${inst.lastError ?? 'error'}); retrying`, until: new Date(due) });
        }
      }
      continue;
    }

    if (inst.status === 'creating') continue; // handled with the counting below

    if (gone) {
      leaving.set(inst.id, 'vanished');
      forgotten.add(inst.id);
      unhealthyCount++;
      unhealthyIds.push(inst.id);
      actions.push({ kind: 'forget', instanceId: inst.id, reason: 'vanished', message: 'the provider no longer has this instance' });
      continue;
    }
    if (terminal) {
      unhealthyCount++;
      unhealthyIds.push(inst.id);
      const deleteTerminated = (): void => {
        leaving.set(inst.id, 'terminated');
        actions.push({
          kind: 'delete',
          instanceId: inst.id,
          reason: 'terminated',
          priority: Priority.urgent,
          message: `the provider reports it ${observed}; ${inst.status === 'draining' ? 'its drain ends now' : 'replacing without a drain'}`,
        });
      };
      // A draining instance is leaving anyway: ending its drain replaces nothing, so the health
      // brake does not hold it.
      const forcedAt = settings && settings.forcedAgeMs > 0 ? inst.createdAt.getTime() + settings.forcedAgeMs : null;
      if (inst.status === 'draining') {
        drainingCount++;
        deleteTerminated();
      } else if (forcedAt !== null && forcedAt <= now) {
        // Forced expiry is a lifetime ceiling, not a health action: the brake does not hold it
        // (and a stopped instance has nothing to drain).
        leaving.set(inst.id, 'expiryForced');
        actions.push({ kind: 'delete', instanceId: inst.id, reason: 'expiryForced', priority: Priority.urgent, message: `older than forcedAge (${settings?.forcedAgeMs ?? 0} ms); the provider reports it ${observed}` });
      } else {
        wakeAt(forcedAt);
        // Judged when first seen so (recorded as unhealthyAt), whatever re-polls saw since; not by a
        // judgement it reported after (it came back, then stopped again: judged anew, as seen now).
        const judgedAt = inst.unhealthyAt && !(healthAtMs !== null && healthAtMs > inst.unhealthyAt.getTime()) ? inst.unhealthyAt.getTime() : null;
        healthActions.push({ inst, reason: 'terminated', judgedAt: judgedAt ?? checkedAtMs ?? now, apply: deleteTerminated });
      }
      continue;
    }

    if (inst.status === 'draining') {
      drainingCount++;
      leaving.set(inst.id, inst.drainReason ?? 'drain');
      if (inst.drainReason === 'unhealthy') {
        unhealthyCount++;
        unhealthyIds.push(inst.id);
      }
      const deadline = ms(inst.drainDeadline) ?? now;
      if (inst.drainAckedAt) {
        actions.push({ kind: 'delete', instanceId: inst.id, reason: 'drainAcked', priority: Priority.high, message: 'drain acknowledged' });
      } else if (deadline <= now) {
        actions.push({ kind: 'delete', instanceId: inst.id, reason: 'drainDeadline', priority: Priority.high, message: 'drain deadline passed' });
      } else {
        wakeAt(deadline);
        // A forced-expiry ceiling also bounds a drain that started for another reason.
      }
      continue;
    }

    // status === 'running'
    const noticeDeadline = ms(inst.noticeDeadline);
    if (noticeDeadline !== null) {
      const deadline = Math.min(now + drainTimeoutMs, noticeDeadline);
      drainOrDelete(inst, 'terminationNotice', deadline, null, `termination notice: the provider terminates it at ${new Date(noticeDeadline).toISOString()}`);
      continue;
    }
    const created = inst.createdAt.getTime();
    if (settings && settings.forcedAgeMs > 0) {
      const forcedAt = created + settings.forcedAgeMs;
      if (forcedAt <= now) {
        drainOrDelete(inst, 'expiryForced', now + drainTimeoutMs, null, `older than forcedAge (${settings.forcedAgeMs} ms)`);
        continue;
      }
      wakeAt(forcedAt);
    }
    // Judged unhealthy, and not heard from since (a report after the judgement: it recovered).
    if (inst.unhealthyAt && !(healthAtMs !== null && healthAtMs > inst.unhealthyAt.getTime())) {
      unhealthyCount++;
      unhealthyIds.push(inst.id);
      unwell.add(inst.id);
      const judgedAt = inst.unhealthyAt.getTime();
      healthActions.push({ inst, reason: 'unhealthy', judgedAt, apply: () => drainOrDelete(inst, 'unhealthy', now + drainTimeoutMs, judgedAt, 'judged unhealthy') });
      continue;
    }
    const healthAt = healthAtMs;
    if (healthAt === null) {
      const startedAt = ms(inst.confirmedAt) ?? created;
      // An instance that booted before this reconciler began observing gets the grace period too.
      const startupDeadline = startedAt < input.observingSince ? Math.max(startedAt + startupTimeoutMs, graceEnds) : startedAt + startupTimeoutMs;
      if (startupDeadline <= now) {
        unhealthyCount++;
        unhealthyIds.push(inst.id);
        healthActions.push({
          inst,
          reason: 'startupTimeout',
          judgedAt: startupDeadline,
          apply: () => {
            leaving.set(inst.id, 'startupTimeout');
            actions.push({
              kind: 'delete',
              instanceId: inst.id,
              reason: 'startupTimeout',
              priority: Priority.urgent,
              message: 'never reported health within the startup timeout',
            });
          },
        });
        continue;
      }
      wakeAt(startupDeadline);
    } else {
      const staleAt = Math.max(healthAt, input.observingSince) + staleAfterMs;
      if (staleAt <= now) {
        unhealthyCount++;
        unhealthyIds.push(inst.id);
        unwell.add(inst.id);
        const checkedAt = ms(inst.providerCheckedAt);
        if (checkedAt !== null && checkedAt >= staleAt && (observed === 'running' || observed === 'pending')) {
          healthActions.push({
            inst,
            reason: 'unhealthy',
            judgedAt: staleAt,
            apply: () => drainOrDelete(inst, 'unhealthy', now + drainTimeoutMs, staleAt, `no health report for ${shard.missedHealthThreshold} intervals while running`),
          });
          continue;
        }
        actions.push({ kind: 'check', instanceId: inst.id, cause: 'healthTimeout', message: 'health report overdue; asking the provider' });
      } else {
        wakeAt(staleAt);
      }
    }
  }

  // ---- 1b. The health brake: above maxUnhealthy, nothing is replaced or deleted for health. ---
  const maxUnhealthy = disruption.maxUnhealthy ? resolveQuantity(disruption.maxUnhealthy, size) : null;
  const brake = maxUnhealthy === null ? null : healthBrake(input, disruption, maxUnhealthy, unhealthyIds);
  const shortCircuited = brake?.on ?? false;
  const removalPendingUntil = settings === null && input.removalPendingUntil !== undefined && input.removalPendingUntil !== null && input.removalPendingUntil > now ? input.removalPendingUntil : null;
  if (brake) {
    wakeAt(brake.changesAt);
    // Instances that recover say so only by reporting again, which marks nothing: while the brake
    // holds, look again every health interval.
    if (brake.on) wakeAt(now + shard.healthCheckIntervalMs);
  }
  if (removalPendingUntil !== null) {
    // Gone from the config, perhaps only for a moment (a file saved in two steps): touch nothing yet.
    wakeAt(removalPendingUntil);
    blocked.push({
      code: 'RemovalPending',
      message: `the group is no longer in the config; its ${input.instances.length} instance(s) are removed at ${new Date(removalPendingUntil).toISOString()} unless the config brings it back first (groupRemovalGrace)`,
      until: new Date(removalPendingUntil),
    });
  } else if (brake?.on) {
    blocked.push(brake.block);
  } else {
    for (const h of healthActions) {
      // With a brake, failures that happen together are counted together before any is acted on.
      const settledAt = brake ? h.judgedAt + disruption.healthSettleMs : h.judgedAt;
      if (settledAt > now) {
        wakeAt(settledAt);
        blocked.push({ code: 'HealthSettling', instanceId: h.inst.id, message: `${h.reason}: acted on once failures that happen with it have been counted (healthSettle)`, until: new Date(settledAt) });
        continue;
      }
      h.apply();
    }
  }

  // ---- 2. Rotation bookkeeping. ----------------------------------------------------------------
  const active = input.instances.filter((i) => (i.status === 'running' || i.status === 'creating') && !leaving.has(i.id));
  const live = input.instances.filter((i) => !forgotten.has(i.id)).length;
  const replacementOf = new Map<string, InstanceRecord>();
  for (const i of input.instances) {
    if (i.replaces && i.status !== 'deleting' && !leaving.has(i.id)) replacementOf.set(i.replaces, i);
  }
  const currentHash = settings?.templateHash ?? null;
  /** Why an instance is due for replacement-first rotation, ignoring protection and holds. */
  const dueFor = (i: InstanceRecord): RotationReason | null => {
    if (!settings || i.status !== 'running' || !isHealthyReported(i)) return null;
    if (input.drainRequests?.has(i.id)) return 'operator';
    if (currentHash !== null && i.templateHash !== currentHash) return 'drift';
    if (settings.eligibleAgeMs > 0) {
      const eligibleAt = i.createdAt.getTime() + settings.eligibleAgeMs;
      if (eligibleAt <= now) return 'expiry';
      wakeAt(eligibleAt);
    }
    return null;
  };
  /** Rotation reason when it may start now: protected and held instances wait (and say so). */
  const rotationReason = (i: InstanceRecord): RotationReason | null => {
    const reason = dueFor(i);
    if (reason === null) return null;
    const prot = protectedUntil(i.id);
    if (prot !== null) {
      wakeAt(prot);
      blocked.push({ code: 'Protected', instanceId: i.id, message: `${reason} rotation waits: protected until ${new Date(prot).toISOString()}`, until: new Date(prot) });
      return null;
    }
    const hold = heldUntil(i.id);
    if (hold !== null && reason !== 'operator') {
      wakeAt(hold);
      blocked.push({ code: 'RotationHeld', instanceId: i.id, message: `${reason} rotation held after a cancel until ${new Date(hold).toISOString()}`, until: new Date(hold) });
      return null;
    }
    return reason;
  };

  // Rotations in progress: a replacement made for the target. One whose target got protected, or
  // held after a cancel, is paused: its replacement is surplus now (and the first to go), but it
  // keeps its place in the budget while the replacement lives, so that what the budget lets in
  // meanwhile never overruns it when the pause ends.
  const rotations: Array<{ target: InstanceRecord; replacement: InstanceRecord; reason: RotationReason }> = [];
  const paused: RotationReason[] = [];
  for (const target of active) {
    const replacement = replacementOf.get(target.id);
    if (!replacement || !active.includes(replacement)) continue;
    // A rotation keeps the reason it was started (and budgeted) for, even if another one came due
    // since; an operator's rotation lasts while its request stands (a cancel ends it for good).
    const started = isRotationReason(replacement.createReason) ? replacement.createReason : null;
    if (started === 'operator' && !input.drainRequests?.has(target.id)) continue;
    const reason = started ?? dueFor(target);
    if (reason === null) continue;
    if (heldUntil(target.id) !== null || protectedUntil(target.id) !== null) paused.push(reason);
    else rotations.push({ target, replacement, reason });
  }

  // Budgets count what is disrupted now: draining for a voluntary reason, or waiting for a
  // replacement. Operator drains forced past the budget count against new disruptions but never
  // stall the ones the budget let in: they are taken last.
  const forcedDrain = (i: InstanceRecord): boolean => input.drainRequests?.get(i.id)?.force === true;
  const used: Record<VoluntaryReason, number> = { scaleDown: 0, expiry: 0, drift: 0, operator: 0 };
  const takenLast: VoluntaryReason[] = [...paused];
  for (const i of input.instances) {
    if (i.status !== 'draining' || !isVoluntary(i.drainReason)) continue;
    if (i.drainReason === 'operator' && forcedDrain(i)) takenLast.push('operator');
    else used[i.drainReason]++;
  }
  for (const a of actions) if (a.kind === 'drain' && isVoluntary(a.reason)) used[a.reason]++;
  const budgets = new BudgetTracker(disruption, size, used, now);

  // Rotations go on, oldest first, while they fit their budgets: a rotation's drain needs room too,
  // so that rotations under way when a budget shrinks (a zero window opens, the group is scaled
  // down) finish one by one as room returns, their replacements up meanwhile.
  const isForced = (r: (typeof rotations)[number]): boolean => r.reason === 'operator' && forcedDrain(r.target);
  rotations.sort((a, b) => Number(isForced(a)) - Number(isForced(b)) || a.replacement.createdAt.getTime() - b.replacement.createdAt.getTime() || (a.target.id < b.target.id ? -1 : 1));
  const covered = new Set<string>();
  for (const r of rotations) {
    const { target, replacement, reason } = r;
    const fits = isForced(r) || budgets.allows(reason);
    budgets.take(reason);
    // A rotation is voluntary: it needs a report within the staleness window, not the grace
    // after a start or a leadership win (which only keeps silence from counting against an instance).
    const reportedRecently = replacement.healthAt !== null && replacement.healthAt.getTime() + staleAfterMs > now;
    if (!(isHealthyReported(replacement) && replacement.status === 'running' && !unwell.has(replacement.id) && reportedRecently)) {
      covered.add(target.id);
      blocked.push({ code: 'WaitingForHealthy', instanceId: target.id, message: `${reason} rotation waits for replacement ${replacement.id} to report healthy` });
      continue;
    }
    if (!fits) {
      covered.add(target.id);
      const b = budgets.reason(reason);
      blocked.push({
        code: 'BudgetExhausted',
        instanceId: target.id,
        message: `${reason} rotation's drain waits: ${b.limitedBy ?? 'budget'} has no room (${b.used} disrupted)`,
        ...(b.until ? { until: b.until } : {}),
      });
      continue;
    }
    drainOrDelete(target, reason, now + drainTimeoutMs, null, `${reason} rotation: replacement ${replacement.id} is healthy`);
  }
  for (const reason of takenLast) budgets.take(reason);
  const counted = active.filter((i) => !leaving.has(i.id) && !covered.has(i.id));
  const maxLive = size + maxSurge;
  let room = maxLive - live;
  if (budgets.nextChange !== null && disruption.budgets.length > 0) wakeAt(budgets.nextChange);

  // Forced expiry is a lifetime guarantee, not a voluntary disruption: it is not budgeted, and
  // the audit says so when it goes past a budget that would have stopped an eligible rotation.
  const expiryBudget = budgets.reason('expiry');
  if (expiryBudget.allowed === 0) {
    for (const a of actions) {
      if ((a.kind === 'drain' || a.kind === 'delete') && a.reason === 'expiryForced') {
        a.message += `; forced expiry is not budgeted and overrides ${expiryBudget.limitedBy ?? 'the expiry budget'}`;
      }
    }
  }

  // ---- 3. Size: create or remove. --------------------------------------------------------------
  const deficit = size - counted.length;
  if (deficit > 0) {
    // Attribute creates to instances that left involuntarily (now, or recently) and have no
    // replacement yet: the audit then says what each new instance replaces, and it is urgent.
    const replaced = new Set<string>();
    for (const i of [...input.instances, ...(input.departed ?? [])]) if (i.replaces) replaced.add(i.replaces);
    const orphans: Array<{ id: string; reason: string }> = [];
    for (const i of input.instances) {
      const reason = leaving.get(i.id);
      if (reason !== undefined && INVOLUNTARY_REASONS.has(reason) && !replaced.has(i.id)) orphans.push({ id: i.id, reason });
    }
    for (const i of input.departed ?? []) {
      const reason = INVOLUNTARY_REASONS.has(i.drainReason ?? '') ? i.drainReason : INVOLUNTARY_REASONS.has(i.deleteReason ?? '') ? i.deleteReason : null;
      if (reason && !replaced.has(i.id)) orphans.push({ id: i.id, reason });
    }
    let n = Math.min(deficit, Math.max(0, room));
    if (input.createHold !== null) {
      const until = input.createHoldUntil ?? null;
      if (until !== null) wakeAt(until);
      blocked.push({ code: 'ProviderErrors', message: `creates held: ${input.createHold}`, ...(until !== null ? { until: new Date(until) } : {}) });
      n = 0;
    }
    for (let k = 0; k < n; k++) {
      const orphan = orphans[k];
      if (orphan) {
        const reason = orphan.reason;
        actions.push({ kind: 'create', reason, replaces: orphan.id, priority: Priority.urgent, message: `replaces ${orphan.id} (${reason})` });
      } else {
        actions.push({ kind: 'create', reason: 'scaleUp', replaces: null, priority: Priority.normal, message: `${counted.length + k} of ${size} counted toward size` });
      }
    }
    if (n < deficit && input.createHold === null) {
      blocked.push({ code: 'SurgeCap', message: `${deficit - n} create(s) wait: ${live + n} live instances, cap size + maxSurge = ${maxLive}` });
    }
  } else if (deficit < 0 && removalPendingUntil === null) {
    const removing = settings === null || size === 0;
    // (`active` still holds rotation targets this plan drains: they must not be picked twice.)
    const pool = (removing ? active.filter((i) => !leaving.has(i.id)) : counted).filter((i) => {
      const prot = settings === null ? null : protectedUntil(i.id);
      if (prot === null) return true;
      wakeAt(prot);
      blocked.push({ code: 'Protected', instanceId: i.id, message: `not removed by scale-down: protected until ${new Date(prot).toISOString()}`, until: new Date(prot) });
      return false;
    });
    const victims = pickVictims(pool, removing ? pool.length : -deficit, input, dueFor);
    const reason: DrainReason = settings === null ? 'groupRemoved' : 'scaleDown';
    for (const victim of victims) {
      if (victim.status !== 'creating' && settings !== null && !budgets.allows('scaleDown')) {
        const b = budgets.reason('scaleDown');
        blocked.push({
          code: 'BudgetExhausted',
          instanceId: victim.id,
          message: `scale-down waits: ${b.limitedBy ?? 'budget'} allows no more disruption now (${b.used} disrupted)`,
          ...(b.until ? { until: b.until } : {}),
        });
        break;
      }
      if (victim.status === 'creating') {
        if (input.inFlight.has(victim.id)) {
          blocked.push({ code: 'WaitingForHealthy', instanceId: victim.id, message: 'surplus create in flight; removed once the provider answers' });
        } else {
          leaving.set(victim.id, reason);
          actions.push({ kind: 'cancelCreate', instanceId: victim.id, reason, message: `${reason}: create not yet confirmed, cancelled` });
        }
        continue;
      }
      if (settings !== null) budgets.take('scaleDown');
      drainOrDelete(victim, reason, now + drainTimeoutMs, null, settings === null ? 'group no longer configured' : `scale down to ${size}`);
    }
  } else if (settings) {
    // ---- 4. Rotations, only when the group is at size. ------------------------------------------
    const order: Record<RotationReason, number> = { operator: 0, drift: 1, expiry: 2 };
    const candidates = counted
      .filter((i) => !replacementOf.has(i.id))
      .map((i) => ({ inst: i, reason: rotationReason(i) }))
      .filter((c): c is { inst: InstanceRecord; reason: RotationReason } => c.reason !== null)
      .sort((a, b) => order[a.reason] - order[b.reason] || a.inst.createdAt.getTime() - b.inst.createdAt.getTime() || (a.inst.id < b.inst.id ? -1 : 1));
    const rotating = covered.size + input.instances.filter((i) => i.status === 'draining' && (i.drainReason === 'drift' || i.drainReason === 'expiry')).length;
    const anyDraining = drainingCount > 0 || actions.some((a) => a.kind === 'drain');
    let driftSlots = Math.max(0, maxSurge - rotating);
    let expiryStarted = false;
    for (const { inst, reason } of candidates) {
      if (room <= 0) {
        blocked.push({ code: 'SurgeCap', instanceId: inst.id, message: `${reason} rotation waits: ${live} live instances, cap ${maxLive}` });
        break;
      }
      const forced = reason === 'operator' && forcedDrain(inst);
      if (!forced && !budgets.allows(reason)) {
        const b = budgets.reason(reason);
        blocked.push({
          code: 'BudgetExhausted',
          instanceId: inst.id,
          message: `${reason} rotation waits: ${b.limitedBy ?? 'budget'} allows no more disruption now (${b.used} disrupted)`,
          ...(b.until ? { until: b.until } : {}),
        });
        continue;
      }
      if (reason === 'operator') {
        // Operator drains are asked for one by one; they wait only for the surge cap and the budget.
      } else if (reason === 'drift') {
        if (driftSlots <= 0) {
          blocked.push({ code: 'DrainInProgress', instanceId: inst.id, message: `drift rotation waits: ${rotating} rotation(s) in progress, maxSurge ${maxSurge}` });
          break;
        }
        driftSlots--;
      } else {
        if (expiryStarted || rotating > 0 || anyDraining) {
          blocked.push({ code: 'DrainInProgress', instanceId: inst.id, message: 'expiry rotation waits: one rotation at a time, and none while an instance drains' });
          continue;
        }
        expiryStarted = true;
      }
      room--;
      budgets.take(reason);
      actions.push({
        kind: 'create',
        reason,
        replaces: inst.id,
        priority: reason === 'operator' ? Priority.normal : Priority.bulk,
        message: `${reason} rotation of ${inst.id}: replacement first${forced ? ' (forced past the budget)' : ''}`,
      });
    }
  }

  // ---- 5. Creates recorded but not sent (after a crash or a failed attempt). -------------------
  for (const inst of input.instances) {
    if (inst.status !== 'creating' || leaving.has(inst.id) || input.inFlight.has(inst.id)) continue;
    const due = ms(inst.nextAttemptAt);
    if (due === null || due <= now) {
      const involuntary = INVOLUNTARY_REASONS.has(inst.createReason);
      actions.push({
        kind: 'dispatchCreate',
        instanceId: inst.id,
        priority: involuntary ? Priority.urgent : Priority.normal,
        message: inst.attempts > 0 ? `retrying create, attempt ${inst.attempts + 1}` : 'sending recorded create',
      });
    } else {
      wakeAt(due);
      blocked.push({ code: 'ProviderErrors', instanceId: inst.id, message: `create failed (${inst.lastError ?? 'error'}); retrying`, until: new Date(due) });
    }
  }

  // An instance chosen to leave needs no health check any more.
  const planned = actions.filter((a) => a.kind !== 'check' || !leaving.has(a.instanceId));

  let inService = 0;
  let pending = 0;
  for (const i of active) {
    if (leaving.has(i.id)) continue;
    if (i.status === 'running' && isHealthyReported(i)) inService++;
    else pending++;
  }
  const drainingNow = input.instances.filter((i) => i.status === 'draining').length + planned.filter((a) => a.kind === 'drain').length;

  return {
    tenant: input.tenant,
    group: input.group,
    configured: settings !== null,
    actions: planned,
    blocked,
    wakeAt: Number.isFinite(wake) ? new Date(wake) : null,
    summary: {
      size,
      live,
      inService,
      pending,
      draining: drainingNow,
      unhealthy: unhealthyCount,
      maxLive,
      disruption: { budgets: budgets.all(), shortCircuited, maxUnhealthy, brakeCount: brake?.count ?? unhealthyCount },
    },
  };
}

/**
 * Scale-down victims, in order: instances whose health is overdue, never-healthy ones (creates
 * not yet sent first), ones due for rotation, then the oldest.
 */
function pickVictims(
  pool: readonly InstanceRecord[],
  count: number,
  input: PlanInput,
  rotationReason: (i: InstanceRecord) => RotationReason | null,
): InstanceRecord[] {
  const staleAfterMs = input.shard.healthCheckIntervalMs * input.shard.missedHealthThreshold;
  const rank = (i: InstanceRecord): number => {
    const healthAt = ms(i.healthAt);
    if (healthAt !== null && Math.max(healthAt, input.observingSince) + staleAfterMs <= input.now) return 0;
    // The replacement made for a rotation that was then cancelled, or whose target got protected, is the surplus.
    if (i.replaces) {
      const hold = input.rotationHolds?.get(i.replaces);
      const prot = input.protectedUntil?.get(i.replaces);
      if ((hold !== undefined && hold > input.now) || (prot !== undefined && prot > input.now)) return 0.5;
    }
    if (i.status === 'creating') return input.inFlight.has(i.id) ? 2 : 1;
    if (healthAt === null) return 3;
    if (rotationReason(i) !== null) return 4;
    return 5;
  };
  return [...pool]
    .map((i) => ({ i, r: rank(i) }))
    .sort((a, b) => a.r - b.r || a.i.createdAt.getTime() - b.i.createdAt.getTime() || (a.i.id < b.i.id ? -1 : 1))
    .slice(0, Math.max(0, count))
    .map((x) => x.i);
}

/**
 * The health brake's count and state. It counts the group's unhealthy instances (silent, stopped,
 * never started, being replaced for health) and those recently replaced for health: one counts
 * until `unhealthyWindow` after it left and until its replacement has reported healthy for that
 * long. So Drover's own remediation never lowers the count that holds it back: the brake lifts
 * only when instances recover or the window passes. `changesAt`: when the window alone changes
 * the count.
 */
function healthBrake(
  input: PlanInput,
  disruption: { unhealthyWindowMs: number },
  maxUnhealthy: number,
  unhealthyIds: readonly string[],
): { on: boolean; count: number; changesAt: number | null; block: Block } {
  const now = input.now;
  const windowMs = disruption.unhealthyWindowMs;
  const replacementOf = new Map<string, InstanceRecord>();
  for (const i of [...input.instances, ...(input.departed ?? [])]) if (i.replaces) replacementOf.set(i.replaces, i);
  /** Until when each recent departure counts. */
  const departures: Array<{ id: string; until: number }> = [];
  let changesAt: number | null = null;
  const later = (t: number): void => {
    if (t > now && (changesAt === null || t < changesAt)) changesAt = t;
  };
  for (const d of input.departed ?? []) {
    if (!leftForHealth(d) || d.deletedAt === null) continue;
    const leftUntil = d.deletedAt.getTime() + windowMs;
    const replacement = replacementOf.get(d.id);
    const firstHealth = replacement && replacement.status !== 'deleted' ? ms(replacement.firstHealthAt) : null;
    // A replacement still booting keeps it counting; without one (not made, or itself gone, when it
    // counts for itself) it counts for the window after it left.
    const provenAt = replacement && replacement.status !== 'deleted' ? (firstHealth === null ? Number.POSITIVE_INFINITY : firstHealth + windowMs) : Number.NEGATIVE_INFINITY;
    const until = Math.max(leftUntil, provenAt);
    if (until <= now) continue;
    departures.push({ id: d.id, until });
    if (Number.isFinite(until)) later(until);
  }
  const count = unhealthyIds.length + departures.length;
  const on = count > maxUnhealthy;
  // When the window alone brings the count down to the limit (if the live unhealthy ones allow it).
  let releaseAt: number | null = null;
  if (on && unhealthyIds.length <= maxUnhealthy) {
    const ends = departures.map((d) => d.until).sort((a, b) => a - b);
    const mustEnd = count - maxUnhealthy;
    const t = ends[mustEnd - 1];
    releaseAt = t !== undefined && Number.isFinite(t) ? t : null;
  }
  const shown = (ids: readonly string[]): string => (ids.length > 8 ? `${ids.slice(0, 8).join(', ')}, ... (${ids.length})` : ids.join(', '));
  const parts = [`${unhealthyIds.length} unhealthy${unhealthyIds.length ? ` (${shown(unhealthyIds)})` : ''}`];
  if (departures.length) parts.push(`${departures.length} recently replaced for health (${shown(departures.map((d) => d.id))}), counted until their replacements prove healthy for unhealthyWindow`);
  const block: Block = {
    code: 'ShortCircuit',
    message: `health brake on: ${parts.join(' and ')} — ${count} in all, more than maxUnhealthy ${maxUnhealthy}: nothing is replaced for health until instances recover${releaseAt !== null ? ` or the window passes (${new Date(releaseAt).toISOString()})` : ''}`,
    instanceIds: [...unhealthyIds, ...departures.map((d) => d.id)],
    ...(releaseAt !== null ? { until: new Date(releaseAt) } : {}),
  };
  return { on, count, changesAt, block };
}
