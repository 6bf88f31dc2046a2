/**
 * Phase 1 — what each instance's facts say: deletes to finish or retry, instances the provider no
 * longer has, launch hooks abandoned or timed out, drains that end (acknowledged, past their deadline, terminated), termination
 * notices, forced expiry, and health: silent, stopped, never started. Health decisions are not
 * taken here but returned as candidates, for the health phase (and its brake) to decide.
 */
import { isTerminalStatus } from '../../providers/types.js';
import { Priority } from '../../queue/priority.js';
import type { InstanceRecord } from '../../store/types.js';
import { formatDuration } from '../../config/index.js';
import { drainOrDelete, launchHookDeadline, leftForHealth, ms, PhaseBuilder, type PlanFrame } from './frame.js';
import type { PhaseResult, PlanAction } from './types.js';

/** A decision about an instance for its health, taken (or held) by the health phase. */
export interface HealthCandidate {
  inst: InstanceRecord;
  reason: 'terminated' | 'unhealthy' | 'startupTimeout';
  /** When the instance was judged unhealthy (the settle delay runs from there). */
  judgedAt: number;
  /** What is done when it goes ahead, and why the instance leaves. */
  action: PlanAction;
  wakeAt: number | null;
}

export interface Classified extends PhaseResult {
  /** Instances the provider no longer has: forgotten in this plan. */
  forgotten: ReadonlySet<string>;
  /**
   * Running instances whose health is overdue, that were judged unhealthy, or that the provider
   * reports stopped while the brake or the settle delay holds their replacement: no rotation
   * counts on them.
   */
  unwell: ReadonlySet<string>;
  /** Live instances the health brake counts as unhealthy. */
  unhealthyIds: readonly string[];
  drainingCount: number;
  candidates: readonly HealthCandidate[];
}

export function classify(frame: PlanFrame): Classified {
  const { input, now } = frame;
  const out = new PhaseBuilder(now);
  const forgotten = new Set<string>();
  const unwell = new Set<string>();
  const unhealthyIds: string[] = [];
  const candidates: HealthCandidate[] = [];
  let drainingCount = 0;
  const candidate = (inst: InstanceRecord, reason: HealthCandidate['reason'], judgedAt: number, decided: { action: PlanAction; wakeAt: number | null }): void => {
    candidates.push({ inst, reason, judgedAt, ...decided });
  };

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
      out.leaving.set(inst.id, inst.deleteReason ?? 'delete');
      if (leftForHealth(inst)) unhealthyIds.push(inst.id);
      if (gone) {
        out.actions.push({ kind: 'forget', instanceId: inst.id, reason: 'vanished', message: 'the provider no longer has it; delete complete' });
        forgotten.add(inst.id);
      } else if (!input.inFlight.has(inst.id)) {
        const due = ms(inst.nextAttemptAt);
        if (inst.attempts >= input.maxAttempts) {
          out.blocked.push({ code: 'ProviderErrors', instanceId: inst.id, message: `delete gave up after ${inst.attempts} attempts (${inst.lastError ?? 'error'}); retried at the next full reconcile` });
        } else if (due === null || due <= now) {
          out.actions.push({ kind: 'dispatchDelete', instanceId: inst.id, message: `deleting (${inst.deleteReason ?? 'delete'}), attempt ${inst.attempts + 1}` });
        } else {
          out.wakeAt(due);
          out.blocked.push({ code: 'ProviderErrors', instanceId: inst.id, message: `delete failed (${inst.lastError ?? 'error'}); retrying`, until: new Date(due) });
        }
      }
      continue;
    }

    if (inst.status === 'creating') continue; // counted with the size, and re-sent (phase 5)

    if (gone) {
      out.leaving.set(inst.id, 'vanished');
      forgotten.add(inst.id);
      unhealthyIds.push(inst.id);
      out.actions.push({ kind: 'forget', instanceId: inst.id, reason: 'vanished', message: 'the provider no longer has this instance' });
      continue;
    }
    if (inst.status === 'running' && (inst.launchHook === 'pending' || inst.launchHook === 'abandoned') && launchHook(frame, inst, out)) continue;
    if (terminal) {
      unhealthyIds.push(inst.id);
      const deleteTerminated: PlanAction = {
        kind: 'delete',
        instanceId: inst.id,
        reason: 'terminated',
        priority: Priority.urgent,
        message: `the provider reports it ${observed}; ${inst.status === 'draining' ? 'its drain ends now' : 'replacing without a drain'}`,
      };
      const forcedAgeMs = input.settings?.forcedAgeMs ?? 0;
      const forcedAt = forcedAgeMs > 0 ? inst.createdAt.getTime() + forcedAgeMs : null;
      if (inst.status === 'draining') {
        // Leaving anyway: ending its drain replaces nothing, so the health brake does not hold it.
        drainingCount++;
        out.leaving.set(inst.id, 'terminated');
        out.actions.push(deleteTerminated);
      } else if (forcedAt !== null && forcedAt <= now) {
        // Forced expiry is a lifetime ceiling, not a health action: the brake does not hold it
        // (and a stopped instance has nothing to drain).
        out.leaving.set(inst.id, 'expiryForced');
        out.actions.push({ kind: 'delete', instanceId: inst.id, reason: 'expiryForced', priority: Priority.urgent, message: `older than forcedAge (${forcedAgeMs} ms); the provider reports it ${observed}` });
      } else {
        out.wakeAt(forcedAt);
        // Held (brake, settle) and not leaving yet: its last health report must not make it a
        // rotation's healthy replacement.
        unwell.add(inst.id);
        candidate(inst, 'terminated', stoppedJudgedAt(inst, now), { action: deleteTerminated, wakeAt: null });
      }
      continue;
    }

    if (inst.status === 'draining') {
      drainingCount++;
      out.leaving.set(inst.id, inst.drainReason ?? 'drain');
      if (inst.drainReason === 'unhealthy') unhealthyIds.push(inst.id);
      const deadline = ms(inst.drainDeadline) ?? now;
      if (inst.drainAckedAt) {
        out.actions.push({ kind: 'delete', instanceId: inst.id, reason: 'drainAcked', priority: Priority.high, message: 'drain acknowledged' });
      } else if (deadline <= now) {
        out.actions.push({ kind: 'delete', instanceId: inst.id, reason: 'drainDeadline', priority: Priority.high, message: 'drain deadline passed' });
      } else {
        out.wakeAt(deadline);
      }
      continue;
    }

    classifyRunning(frame, inst, out, { unwell, unhealthyIds, candidate });
  }
  return { ...out.result(), forgotten, unwell, unhealthyIds, drainingCount, candidates };
}

/**
 * A running instance's launch hook, pending or abandoned. Abandoned: deleted (it never served, so
 * without a drain) and replaced. Pending: it waits (a block, and a wake-up at its timeout — the
 * group's wake timer is durable), unless its timeout passed (then `onTimeout` is recorded, and an
 * abandon is acted on by the next plan, which the executor asks for at once) or the group no
 * longer has a launch hook (continued). Its health is judged as any new instance's
 * meanwhile (a silent one is still replaced after startupTimeout). True when this plan has decided
 * about it: it leaves, or its hook's end is recorded first — one action per instance and plan;
 * the executor replans at once, and that plan judges its health.
 */
function launchHook(frame: PlanFrame, inst: InstanceRecord, out: PhaseBuilder): boolean {
  const settings = frame.input.settings;
  if (settings === null) return false; // a group no longer configured removes its instances anyway
  const abandon = (message: string): true => {
    out.leaving.set(inst.id, 'launchHookAbandoned');
    out.actions.push({ kind: 'delete', instanceId: inst.id, reason: 'launchHookAbandoned', priority: Priority.urgent, message });
    return true;
  };
  if (inst.launchHook === 'abandoned') return abandon('its launch hook was abandoned; replaced');
  const hook = settings.launchHook;
  if (hook === null) {
    out.actions.push({ kind: 'launchHook', instanceId: inst.id, result: 'continue', cause: 'unconfigured', message: 'the group no longer has a launch hook: continued' });
    return true;
  }
  const deadline = launchHookDeadline(inst, hook.timeoutMs);
  if (deadline <= frame.now) {
    // Recorded first (one action per instance and plan): once abandoned, the next plan replaces it.
    const message = `launch hook not completed within ${formatDuration(hook.timeoutMs)}: onTimeout ${hook.onTimeout}`;
    out.actions.push({ kind: 'launchHook', instanceId: inst.id, result: hook.onTimeout, cause: 'timeout', message });
    // (No wake-up needed: the executor replans after recording it.)
    return true;
  }
  out.wakeAt(deadline);
  out.blocked.push({
    code: 'LaunchHookPending',
    instanceId: inst.id,
    message: `waits for its launch hook (completed by an operator, or by the instance with "drover self ready"); not in service until then; onTimeout ${hook.onTimeout} at ${new Date(deadline).toISOString()}`,
    until: new Date(deadline),
  });
  return false;
}

/**
 * When a stopped (or otherwise terminal) instance was judged unhealthy: when it was first seen so
 * (recorded as unhealthyAt), whatever re-polls saw since — but not by a judgement it reported
 * after. One that came back, reported, then stopped again is judged anew, from when it was seen
 * stopped: timed from its first stop, it would be past the brake's settle delay at once and
 * replaced before the failures that came with it are counted (sim seeds 16, 175).
 */
export function stoppedJudgedAt(inst: InstanceRecord, now: number): number {
  const judgedAt = ms(inst.unhealthyAt);
  const healthAt = ms(inst.healthAt);
  if (judgedAt !== null && !(healthAt !== null && healthAt > judgedAt)) return judgedAt;
  return ms(inst.providerCheckedAt) ?? now;
}

/** A running instance: a termination notice, forced expiry, or its health. */
function classifyRunning(
  frame: PlanFrame,
  inst: InstanceRecord,
  out: PhaseBuilder,
  found: { unwell: Set<string>; unhealthyIds: string[]; candidate: (inst: InstanceRecord, reason: HealthCandidate['reason'], judgedAt: number, decided: { action: PlanAction; wakeAt: number | null }) => void },
): void {
  const { input, now, drainTimeoutMs, staleAfterMs } = frame;
  const settings = input.settings;
  const noticeDeadline = ms(inst.noticeDeadline);
  if (noticeDeadline !== null) {
    out.leave(inst, 'terminationNotice', Math.min(now + drainTimeoutMs, noticeDeadline), null, `termination notice: the provider terminates it at ${new Date(noticeDeadline).toISOString()}`);
    return;
  }
  const created = inst.createdAt.getTime();
  if (settings && settings.forcedAgeMs > 0) {
    const forcedAt = created + settings.forcedAgeMs;
    if (forcedAt <= now) {
      out.leave(inst, 'expiryForced', now + drainTimeoutMs, null, `older than forcedAge (${settings.forcedAgeMs} ms)`);
      return;
    }
    out.wakeAt(forcedAt);
  }
  const healthAt = ms(inst.healthAt);
  // Judged unhealthy, and not heard from since (a report after the judgement: it recovered).
  if (inst.unhealthyAt && !(healthAt !== null && healthAt > inst.unhealthyAt.getTime())) {
    found.unhealthyIds.push(inst.id);
    found.unwell.add(inst.id);
    const judgedAt = inst.unhealthyAt.getTime();
    found.candidate(inst, 'unhealthy', judgedAt, drainOrDelete(now, inst, 'unhealthy', now + drainTimeoutMs, judgedAt, 'judged unhealthy'));
    return;
  }
  if (healthAt === null) {
    const startedAt = ms(inst.confirmedAt) ?? created;
    // An instance that booted before this reconciler began observing gets the grace period too.
    const startupDeadline = startedAt < input.observingSince ? Math.max(startedAt + frame.startupTimeoutMs, frame.graceEnds) : startedAt + frame.startupTimeoutMs;
    if (startupDeadline <= now) {
      found.unhealthyIds.push(inst.id);
      found.candidate(inst, 'startupTimeout', startupDeadline, {
        action: { kind: 'delete', instanceId: inst.id, reason: 'startupTimeout', priority: Priority.urgent, message: 'never reported health within the startup timeout' },
        wakeAt: null,
      });
      return;
    }
    out.wakeAt(startupDeadline);
    return;
  }
  const staleAt = Math.max(healthAt, input.observingSince) + staleAfterMs;
  if (staleAt > now) {
    out.silentAt(staleAt);
    return;
  }
  found.unhealthyIds.push(inst.id);
  found.unwell.add(inst.id);
  const checkedAt = ms(inst.providerCheckedAt);
  const observed = inst.providerStatus;
  if (checkedAt !== null && checkedAt >= staleAt && (observed === 'running' || observed === 'pending')) {
    found.candidate(inst, 'unhealthy', staleAt, drainOrDelete(now, inst, 'unhealthy', now + drainTimeoutMs, staleAt, `no health report for ${input.shard.missedHealthThreshold} intervals while running`));
    return;
  }
  out.actions.push({ kind: 'check', instanceId: inst.id, cause: 'healthTimeout', message: 'health report overdue; asking the provider' });
}
