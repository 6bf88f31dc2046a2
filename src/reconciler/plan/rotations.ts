/**
 * Phase 3 — rotations (operator, drift, expiry: replacement first). Which instances are due, the
 * rotations under way (a replacement made for a target), the budgets they use, and the drains of
 * targets whose replacement has proved healthy. The budget ledger it opens is handed on to the
 * size phase, which takes from it what it disrupts in turn.
 */
import type { InstanceRecord } from '../../store/types.js';
import { BudgetTracker } from '../disruption.js';
import type { RotationReason, VoluntaryReason } from '../reasons.js';
import { budgetBlock, earliest, heldByLaunchHook, isRotationReason, isVoluntary, PhaseBuilder, servesNow, type PlanFrame } from './frame.js';
import type { Block, PhaseResult } from './types.js';

/** Why an instance is due for replacement-first rotation, ignoring protection and holds. */
export function dueFor(frame: PlanFrame, i: InstanceRecord): RotationReason | null {
  const settings = frame.input.settings;
  if (!settings || !servesNow(i)) return null;
  if (frame.input.drainRequests?.has(i.id)) return 'operator';
  if (i.templateHash !== settings.templateHash) return 'drift';
  if (settings.eligibleAgeMs > 0 && i.createdAt.getTime() + settings.eligibleAgeMs <= frame.now) return 'expiry';
  return null;
}

/** When the next instance comes of age for an expiry rotation (the plan wakes then). */
export function nextExpiry(frame: PlanFrame): number | null {
  const settings = frame.input.settings;
  if (!settings || settings.eligibleAgeMs <= 0) return null;
  let next: number | null = null;
  for (const i of frame.input.instances) {
    if (servesNow(i)) next = earliest(frame.now, next, i.createdAt.getTime() + settings.eligibleAgeMs);
  }
  return next;
}

/**
 * The rotation an instance may start now, or why it waits: a protection, or a hold after a cancel
 * (an operator's request ignores holds).
 */
export function rotationReason(frame: PlanFrame, i: InstanceRecord): { reason: RotationReason | null; block?: Block; wakeAt?: number } {
  const reason = dueFor(frame, i);
  if (reason === null) return { reason };
  const prot = frame.protectedUntil(i.id);
  if (prot !== null) {
    return { reason: null, wakeAt: prot, block: { code: 'Protected', instanceId: i.id, message: `${reason} rotation waits: protected until ${new Date(prot).toISOString()}`, until: new Date(prot) } };
  }
  const hold = frame.heldUntil(i.id);
  if (hold !== null && reason !== 'operator') {
    return { reason: null, wakeAt: hold, block: { code: 'RotationHeld', instanceId: i.id, message: `${reason} rotation held after a cancel until ${new Date(hold).toISOString()}`, until: new Date(hold) } };
  }
  return { reason };
}

export interface RotationState extends PhaseResult {
  /** Targets whose replacement exists but may not drain yet: they do not count toward the size. */
  covered: ReadonlySet<string>;
  /** The replacement made for each target. */
  replacementOf: ReadonlyMap<string, InstanceRecord>;
  /** The budget ledger, with what is disrupted now taken from it. */
  budgets: BudgetTracker;
}

/**
 * Rotations under way. Budgets count what is disrupted now: draining for a voluntary reason, or
 * waiting for a replacement. They go on, oldest first, while they fit their budgets: a rotation's
 * drain needs room too, so that rotations under way when a budget shrinks (a zero window opens,
 * the group is scaled down) finish one by one as room returns, their replacements up meanwhile.
 */
export function rotationsInProgress(frame: PlanFrame, leaving: ReadonlyMap<string, string>, unwell: ReadonlySet<string>): RotationState {
  const { input, now } = frame;
  const out = new PhaseBuilder(now);
  const active = input.instances.filter((i) => (i.status === 'running' || i.status === 'creating') && !leaving.has(i.id));
  const activeIds = new Set(active.map((i) => i.id));
  const replacementOf = new Map<string, InstanceRecord>();
  for (const i of input.instances) {
    if (i.replaces && i.status !== 'deleting' && !leaving.has(i.id)) replacementOf.set(i.replaces, i);
  }
  // One whose target got protected, or held after a cancel, is paused: its replacement is surplus
  // now (and the first to go), but it keeps its place in the budget while the replacement lives,
  // so that what the budget lets in meanwhile never overruns it when the pause ends.
  const rotations: Array<{ target: InstanceRecord; replacement: InstanceRecord; reason: RotationReason; forced: boolean }> = [];
  const paused: RotationReason[] = [];
  for (const target of active) {
    const replacement = replacementOf.get(target.id);
    if (!replacement || !activeIds.has(replacement.id)) continue;
    // A rotation keeps the reason it was started (and budgeted) for, even if another one came due
    // since; an operator's rotation lasts while its request stands (a cancel ends it for good).
    const started = isRotationReason(replacement.createReason) ? replacement.createReason : null;
    if (started === 'operator' && !input.drainRequests?.has(target.id)) continue;
    const reason = started ?? dueFor(frame, target);
    if (reason === null) continue;
    if (frame.heldUntil(target.id) !== null || frame.protectedUntil(target.id) !== null) paused.push(reason);
    else rotations.push({ target, replacement, reason, forced: reason === 'operator' && frame.forcedDrain(target) });
  }

  // Operator drains forced past the budget count against new disruptions but never stall the ones
  // the budget let in: they are taken last.
  const used: Record<VoluntaryReason, number> = { scaleDown: 0, expiry: 0, drift: 0, operator: 0 };
  const takenLast: VoluntaryReason[] = [...paused];
  for (const i of input.instances) {
    if (i.status !== 'draining' || !isVoluntary(i.drainReason)) continue;
    if (i.drainReason === 'operator' && frame.forcedDrain(i)) takenLast.push('operator');
    else used[i.drainReason]++;
  }
  const budgets = new BudgetTracker(frame.disruption, frame.size, used, now);

  rotations.sort((a, b) => Number(a.forced) - Number(b.forced) || a.replacement.createdAt.getTime() - b.replacement.createdAt.getTime() || (a.target.id < b.target.id ? -1 : 1));
  const covered = new Set<string>();
  for (const { target, replacement, reason, forced } of rotations) {
    const fits = forced || budgets.allows(reason);
    budgets.take(reason);
    // A rotation is voluntary: it needs a report within the staleness window, not the grace
    // after a start or a leadership win (which only keeps silence from counting against an instance).
    const reportedRecently = replacement.healthAt !== null && replacement.healthAt.getTime() + frame.staleAfterMs > now;
    if (!(replacement.status === 'running' && !unwell.has(replacement.id) && reportedRecently) || heldByLaunchHook(replacement)) {
      covered.add(target.id);
      const waitsFor = heldByLaunchHook(replacement) ? 'to complete its launch hook' : 'to report healthy';
      out.blocked.push({ code: 'WaitingForHealthy', instanceId: target.id, message: `${reason} rotation waits for replacement ${replacement.id} ${waitsFor}` });
      continue;
    }
    if (!fits) {
      covered.add(target.id);
      out.blocked.push(budgetBlock(budgets, reason, target.id, `${reason} rotation's drain`));
      continue;
    }
    out.leave(target, reason, now + frame.drainTimeoutMs, null, `${reason} rotation: replacement ${replacement.id} is healthy`);
  }
  for (const reason of takenLast) budgets.take(reason);
  if (budgets.nextChange !== null && frame.disruption.budgets.length > 0) out.wakeAt(budgets.nextChange);
  out.wakeAt(nextExpiry(frame));
  return { ...out.result(), covered, replacementOf, budgets };
}
