/**
 * Phase 4 — the group's size: creates when it is short (attributed to what they replace), victims
 * when it is over (drained through the scale-down budget, or cancelled before they exist), and —
 * only when it is at size — new rotations (replacement first). Then phase 5: creates recorded but
 * never sent (after a crash or a failed attempt).
 */
import { Priority } from '../../queue/priority.js';
import type { InstanceRecord } from '../../store/types.js';
import type { BudgetTracker } from '../disruption.js';
import { INVOLUNTARY_REASONS, isOneOf, type DrainReason, type InvoluntaryReason, type RotationReason } from '../reasons.js';
import { budgetBlock, heldByLaunchHook, INVOLUNTARY, ms, olderFirst, PhaseBuilder, type PlanFrame } from './frame.js';
import { dueFor, rotationReason } from './rotations.js';
import type { PhaseResult } from './types.js';

/** The group as the size phase sees it, after health and rotations have taken their share. */
export interface SizeView {
  /** Running or creating, not leaving (rotation targets this plan drains are still in it). */
  active: readonly InstanceRecord[];
  /** Active minus leaving and covered rotation targets: what counts toward the size. */
  counted: readonly InstanceRecord[];
  /** Instances not forgotten: what the surge cap counts. */
  live: number;
  leaving: ReadonlyMap<string, string>;
  covered: ReadonlySet<string>;
  replacementOf: ReadonlyMap<string, InstanceRecord>;
  budgets: BudgetTracker;
  /** Instances draining now, or starting to in this plan. */
  anyDraining: boolean;
}

export function sizeActions(frame: PlanFrame, view: SizeView, removalPending: boolean): PhaseResult {
  const deficit = frame.size - view.counted.length;
  if (deficit > 0) return scaleUp(frame, view, deficit);
  if (deficit < 0) return removalPending ? new PhaseBuilder(frame.now).result() : scaleDown(frame, view, -deficit);
  return frame.input.settings ? startRotations(frame, view) : new PhaseBuilder(frame.now).result();
}

/**
 * Creates up to the surge cap. Each is attributed to an instance that left involuntarily (now, or
 * recently) and has no replacement yet: the audit then says what it replaces, and it is urgent.
 */
function scaleUp(frame: PlanFrame, view: SizeView, deficit: number): PhaseResult {
  const { input, size } = frame;
  const out = new PhaseBuilder(frame.now);
  const maxLive = size + frame.maxSurge;
  const replaced = new Set<string>();
  for (const i of [...input.instances, ...(input.departed ?? [])]) if (i.replaces) replaced.add(i.replaces);
  const orphans: Array<{ id: string; reason: InvoluntaryReason }> = [];
  for (const i of input.instances) {
    const reason = view.leaving.get(i.id);
    if (isOneOf(INVOLUNTARY_REASONS, reason) && !replaced.has(i.id)) orphans.push({ id: i.id, reason });
  }
  for (const i of input.departed ?? []) {
    const reason = isOneOf(INVOLUNTARY_REASONS, i.drainReason) ? i.drainReason : isOneOf(INVOLUNTARY_REASONS, i.deleteReason) ? i.deleteReason : null;
    if (reason !== null && !replaced.has(i.id)) orphans.push({ id: i.id, reason });
  }
  let n = Math.min(deficit, Math.max(0, maxLive - view.live));
  if (input.createHold !== null) {
    const until = input.createHoldUntil ?? null;
    out.wakeAt(until);
    out.blocked.push({ code: 'ProviderErrors', message: `creates held: ${input.createHold}`, ...(until !== null ? { until: new Date(until) } : {}) });
    n = 0;
  }
  for (let k = 0; k < n; k++) {
    const orphan = orphans[k];
    if (orphan) out.actions.push({ kind: 'create', reason: orphan.reason, replaces: orphan.id, priority: Priority.urgent, message: `replaces ${orphan.id} (${orphan.reason})` });
    else out.actions.push({ kind: 'create', reason: 'scaleUp', replaces: null, priority: Priority.normal, message: `${view.counted.length + k} of ${size} counted toward size` });
  }
  if (n < deficit && input.createHold === null) {
    out.blocked.push({ code: 'SurgeCap', message: `${deficit - n} create(s) wait: ${view.live + n} live instances, cap size + maxSurge = ${maxLive}` });
  }
  return out.result();
}

/** Removes `excess` instances (all of them when the group is gone or at 0), worst first. */
function scaleDown(frame: PlanFrame, view: SizeView, excess: number): PhaseResult {
  const { input, now } = frame;
  const settings = input.settings;
  const out = new PhaseBuilder(now);
  const removing = settings === null || frame.size === 0;
  // (`active` still holds rotation targets this plan drains: they must not be picked twice.)
  const candidates = removing ? view.active.filter((i) => !view.leaving.has(i.id)) : view.counted;
  const pool = candidates.filter((i) => {
    const prot = settings === null ? null : frame.protectedUntil(i.id);
    if (prot === null) return true;
    out.wakeAt(prot);
    out.blocked.push({ code: 'Protected', instanceId: i.id, message: `not removed by scale-down: protected until ${new Date(prot).toISOString()}`, until: new Date(prot) });
    return false;
  });
  const reason: DrainReason = settings === null ? 'groupRemoved' : 'scaleDown';
  for (const victim of pickVictims(frame, pool, removing ? pool.length : excess)) {
    if (victim.status === 'creating') {
      if (input.inFlight.has(victim.id)) {
        out.blocked.push({ code: 'WaitingForHealthy', instanceId: victim.id, message: 'surplus create in flight; removed once the provider answers' });
      } else {
        out.leaving.set(victim.id, reason);
        out.actions.push({ kind: 'cancelCreate', instanceId: victim.id, reason, message: `${reason}: create not yet confirmed, cancelled` });
      }
      continue;
    }
    if (settings !== null) {
      if (!view.budgets.allows('scaleDown')) {
        out.blocked.push(budgetBlock(view.budgets, 'scaleDown', victim.id, 'scale-down'));
        break;
      }
      view.budgets.take('scaleDown');
    }
    out.leave(victim, reason, now + frame.drainTimeoutMs, null, settings === null ? 'group no longer configured' : `scale down to ${frame.size}`);
  }
  return out.result();
}

/**
 * Scale-down victims, in order: instances whose health is overdue, the surplus replacement of a
 * paused rotation, never-healthy ones and ones waiting for their launch hook (creates not yet sent first), ones due for rotation, then
 * the oldest.
 */
export function pickVictims(frame: PlanFrame, pool: readonly InstanceRecord[], count: number): InstanceRecord[] {
  const { input, now } = frame;
  const rank = (i: InstanceRecord): number => {
    const healthAt = ms(i.healthAt);
    if (healthAt !== null && Math.max(healthAt, input.observingSince) + frame.staleAfterMs <= now) return 0;
    // The replacement made for a rotation that was then cancelled, or whose target got protected, is the surplus.
    if (i.replaces && (frame.heldUntil(i.replaces) !== null || frame.protectedUntil(i.replaces) !== null)) return 0.5;
    if (i.status === 'creating') return input.inFlight.has(i.id) ? 2 : 1;
    if (healthAt === null || heldByLaunchHook(i)) return 3;
    if (dueFor(frame, i) !== null) return 4;
    return 5;
  };
  return [...pool]
    .map((i) => ({ i, r: rank(i) }))
    .sort((a, b) => a.r - b.r || olderFirst(a.i, b.i))
    .slice(0, Math.max(0, count))
    .map((x) => x.i);
}

/** New rotations, only when the group is at size: operator requests, then drift, then expiry. */
function startRotations(frame: PlanFrame, view: SizeView): PhaseResult {
  const { input, now, maxSurge } = frame;
  const out = new PhaseBuilder(now);
  const order: Record<RotationReason, number> = { operator: 0, drift: 1, expiry: 2 };
  const candidates: Array<{ inst: InstanceRecord; reason: RotationReason }> = [];
  for (const inst of view.counted) {
    if (view.replacementOf.has(inst.id)) continue;
    const due = rotationReason(frame, inst);
    if (due.block) out.blocked.push(due.block);
    out.wakeAt(due.wakeAt);
    if (due.reason !== null) candidates.push({ inst, reason: due.reason });
  }
  candidates.sort((a, b) => order[a.reason] - order[b.reason] || olderFirst(a.inst, b.inst));
  const maxLive = frame.size + maxSurge;
  let room = maxLive - view.live;
  const rotating = view.covered.size + input.instances.filter((i) => i.status === 'draining' && (i.drainReason === 'drift' || i.drainReason === 'expiry')).length;
  let driftSlots = Math.max(0, maxSurge - rotating);
  let expiryStarted = false;
  for (const { inst, reason } of candidates) {
    if (room <= 0) {
      out.blocked.push({ code: 'SurgeCap', instanceId: inst.id, message: `${reason} rotation waits: ${view.live} live instances, cap ${maxLive}` });
      break;
    }
    const forced = reason === 'operator' && frame.forcedDrain(inst);
    if (!forced && !view.budgets.allows(reason)) {
      out.blocked.push(budgetBlock(view.budgets, reason, inst.id, `${reason} rotation`));
      continue;
    }
    if (reason === 'drift') {
      if (driftSlots <= 0) {
        out.blocked.push({ code: 'DrainInProgress', instanceId: inst.id, message: `drift rotation waits: ${rotating} rotation(s) in progress, maxSurge ${maxSurge}` });
        break;
      }
      driftSlots--;
    } else if (reason === 'expiry') {
      if (expiryStarted || rotating > 0 || view.anyDraining) {
        out.blocked.push({ code: 'DrainInProgress', instanceId: inst.id, message: 'expiry rotation waits: one rotation at a time, and none while an instance drains' });
        continue;
      }
      expiryStarted = true;
    }
    // (Operator drains are asked for one by one; they wait only for the surge cap and the budget.)
    room--;
    view.budgets.take(reason);
    out.actions.push({
      kind: 'create',
      reason,
      replaces: inst.id,
      priority: reason === 'operator' ? Priority.normal : Priority.bulk,
      message: `${reason} rotation of ${inst.id}: replacement first${forced ? ' (forced past the budget)' : ''}`,
    });
  }
  return out.result();
}

/** Phase 5 — creates recorded but not sent (after a crash or a failed attempt). */
export function resends(frame: PlanFrame, leaving: ReadonlyMap<string, string>): PhaseResult {
  const { input, now } = frame;
  const out = new PhaseBuilder(now);
  for (const inst of input.instances) {
    if (inst.status !== 'creating' || leaving.has(inst.id) || input.inFlight.has(inst.id)) continue;
    const due = ms(inst.nextAttemptAt);
    if (due === null || due <= now) {
      out.actions.push({
        kind: 'dispatchCreate',
        instanceId: inst.id,
        priority: INVOLUNTARY.has(inst.createReason) ? Priority.urgent : Priority.normal,
        message: inst.attempts > 0 ? `retrying create, attempt ${inst.attempts + 1}` : 'sending recorded create',
      });
    } else {
      out.wakeAt(due);
      out.blocked.push({ code: 'ProviderErrors', instanceId: inst.id, message: `create failed (${inst.lastError ?? 'error'}); retrying`, until: new Date(due) });
    }
  }
  return out.result();
}
