/**
 * What operators (and workloads, through their agent) may do to an instance: ask for a drain,
 * extend, cancel or force one, protect an instance for a while, complete its launch hook. Each call validates first and
 * then applies in one step, is audited with who asked, and marks the group for reconciliation.
 * Errors: InvalidRequestError (bad input), ConflictError (the instance's state does not allow
 * it; the message says why), NotLeaderError (only the leader acts), and a not-found error.
 */
import { maxDrainTimeoutOf, type LaunchHookResult } from '../config/index.js';
import { ConflictError, InstanceUnknownError, InvalidRequestError, NotLeaderError } from '../errors/index.js';
import { TAG } from '../providers/index.js';
import { Priority } from '../queue/priority.js';
import { keys, type DrainRequest, type Protection, type RotationHold } from '../state/index.js';
import type { AuditAction, InstanceRecord, LaunchHookState, NewAuditEntry } from '../store/index.js';
import type { Context } from './context.js';
import { writeDrainTags, writeLaunchHookTag } from './executor.js';
import type { Plan } from './plan.js';
import { ROTATION_REASONS } from './reasons.js';

export { InstanceUnknownError };

/** Longest protection one request may give. */
export const MAX_PROTECTION_MS = 30 * 86_400_000;
/** Drain reasons an operator may cancel: the voluntary rotations. */
const CANCELLABLE: ReadonlySet<string> = new Set<string>(ROTATION_REASONS);

export interface OperatorActionDeps {
  ctx: Context;
  plan(tenant: string, group: string): Plan;
  /** Tells the instance's agent its drain was cancelled (if connected). */
  notifyDrainCancelled?(instanceId: string): void;
}

export class OperatorActions {
  constructor(private readonly deps: OperatorActionDeps) {}

  private get ctx(): Context {
    return this.deps.ctx;
  }

  private requireLeader(action: string): void {
    if (!this.ctx.leader()) throw new NotLeaderError(action);
  }

  private instance(id: string): InstanceRecord {
    const record = this.ctx.store.getInstance(id);
    if (!record || record.status === 'deleted') throw new InstanceUnknownError(id);
    return record;
  }

  private auditEntry(record: InstanceRecord, action: AuditAction, reason: string, actor: string, detail: string): Omit<NewAuditEntry, 'instanceId'> {
    return { tenant: record.tenant, group: record.group, at: this.ctx.clock.now(), action, reason, actor, detail, epoch: this.ctx.epoch() };
  }

  private audit(record: InstanceRecord, action: AuditAction, reason: string, actor: string, detail: string): void {
    this.ctx.store.appendAudit({ ...this.auditEntry(record, action, reason, actor, detail), instanceId: record.id });
  }

  /** Protection in force for an instance, if any. */
  protectedUntil(instanceId: string): Date | null {
    const p = this.ctx.operatorState().get<Protection>(keys.protection(instanceId));
    if (!p) return null;
    const until = Date.parse(p.until);
    return until > this.ctx.clock.nowMs() ? new Date(until) : null;
  }

  /**
   * Operator drain, replacement first. Refused (409) when the budget is spent, unless `force`,
   * or unless `waitForBudget`: then it is recorded and the plan starts it when the budget allows
   * (what a cloud's rebalance recommendation asks for). `why` goes into the audit.
   */
  async requestDrain(instanceId: string, options: { force: boolean; actor: string; waitForBudget?: boolean; why?: string }): Promise<{ instanceId: string; force: boolean }> {
    this.requireLeader(`draining instance ${instanceId}`);
    const record = this.instance(instanceId);
    if (record.status !== 'running') throw new ConflictError(`instance ${instanceId} is ${record.status}; only a running instance can be drained`);
    const protectedUntil = this.protectedUntil(instanceId);
    if (protectedUntil) throw new ConflictError(`instance ${instanceId} is protected until ${protectedUntil.toISOString()}; remove the protection first`);
    const state = this.ctx.operatorState();
    if (state.get<DrainRequest>(keys.drainRequest(instanceId))) throw new ConflictError(`instance ${instanceId} already has a drain requested`);
    if (!options.force && !options.waitForBudget) {
      const budget = this.deps.plan(record.tenant, record.group).summary.disruption.budgets.operator;
      if (budget.allowed !== null && budget.allowed <= 0) {
        throw new ConflictError(`${budget.limitedBy ?? 'the disruption budget'} is spent (${budget.used} disrupted now); retry later or force the drain`);
      }
    }
    const now = this.ctx.clock.now();
    await state.set(keys.drainRequest(instanceId), { force: options.force, at: now.toISOString(), by: options.actor } satisfies DrainRequest);
    await state.set(keys.hold(instanceId), null);
    const how = options.force ? 'drain requested, forced past any budget; replacement first' : options.waitForBudget ? 'drain requested; replacement first, when the budget allows' : 'drain requested; replacement first';
    this.audit(record, 'drainRequested', 'operator', options.actor, options.why ? `${options.why}: ${how}` : how);
    this.ctx.markDirty(record.tenant, record.group, 'operator', Priority.high);
    return { instanceId, force: options.force };
  }

  /** Moves a drain's deadline later, capped by maxDrainTimeout, forced expiry and a termination notice. */
  async extendDrain(instanceId: string, byMs: number, actor: string): Promise<{ instanceId: string; drainDeadline: Date; capped: boolean }> {
    if (!Number.isFinite(byMs) || byMs <= 0) throw new InvalidRequestError('by must be a positive duration such as "10m"');
    this.requireLeader(`extending the drain of ${instanceId}`);
    const record = this.instance(instanceId);
    if (record.status !== 'draining' || !record.drainDeadline || !record.drainStartedAt) throw new ConflictError(`instance ${instanceId} is not draining (status ${record.status})`);
    const settings = this.ctx.settings(record.tenant, record.group);
    const current = record.drainDeadline.getTime();
    let deadline = current + byMs;
    const caps: Array<[number, string]> = [];
    // Without a maxDrainTimeout of its own a drain is still bounded (24h by default).
    if (settings) caps.push([record.drainStartedAt.getTime() + maxDrainTimeoutOf(settings), settings.disruption.maxDrainTimeoutMs === null ? 'the default maxDrainTimeout (24h)' : 'maxDrainTimeout']);
    if (settings && settings.forcedAgeMs > 0) caps.push([record.createdAt.getTime() + settings.forcedAgeMs + settings.drainTimeoutMs, 'forcedAge + drainTimeout']);
    if (record.noticeDeadline) caps.push([record.noticeDeadline.getTime(), 'the termination notice']);
    let cappedBy: string | null = null;
    for (const [cap, what] of caps) {
      if (cap < deadline) {
        deadline = cap;
        cappedBy = what;
      }
    }
    if (deadline <= current) {
      return { instanceId, drainDeadline: record.drainDeadline, capped: true };
    }
    const newDeadline = new Date(deadline);
    this.ctx.store.transaction(() => {
      this.ctx.store.updateInstance(instanceId, { drainDeadline: newDeadline });
      this.audit(record, 'drainExtended', record.drainReason ?? 'drain', actor, `deadline ${record.drainDeadline?.toISOString() ?? '?'} -> ${newDeadline.toISOString()}${cappedBy ? ` (capped by ${cappedBy})` : ''}`);
    });
    void writeDrainTags(this.ctx, record, { [TAG.drainDeadline]: newDeadline.toISOString() });
    this.ctx.markDirty(record.tenant, record.group, 'operator', Priority.high);
    return { instanceId, drainDeadline: newDeadline, capped: cappedBy !== null };
  }

  /**
   * Cancels an operator, expiry or drift drain (or such a rotation still waiting for its
   * replacement): the instance returns to service and is not picked again for `cancelHold`.
   */
  async cancelDrain(instanceId: string, actor: string): Promise<{ instanceId: string; heldUntil: Date }> {
    this.requireLeader(`cancelling the drain of ${instanceId}`);
    const record = this.instance(instanceId);
    const state = this.ctx.operatorState();
    const request = state.get<DrainRequest>(keys.drainRequest(instanceId));
    const pendingRotation = record.status === 'running' && (request !== undefined || this.ctx.store.liveInstances(record.tenant, record.group).some((i) => i.replaces === instanceId && i.status !== 'deleting'));
    if (record.status === 'draining') {
      if (!CANCELLABLE.has(record.drainReason ?? '')) {
        throw new ConflictError(`instance ${instanceId} drains for ${record.drainReason ?? 'an unknown reason'}, which cannot be cancelled (only operator, expiry and drift drains can)`);
      }
    } else if (!pendingRotation) {
      throw new ConflictError(`instance ${instanceId} is not draining (status ${record.status})`);
    }
    const settings = this.ctx.settings(record.tenant, record.group);
    const now = this.ctx.clock.nowMs();
    const heldUntil = new Date(now + (settings?.disruption.cancelHoldMs ?? 3_600_000));
    const reason = record.drainReason ?? (request ? 'operator' : 'rotation');
    await state.set(keys.hold(instanceId), { until: heldUntil.toISOString(), reason, by: actor } satisfies RotationHold);
    await state.set(keys.drainRequest(instanceId), null);
    const detail = `back in service; not picked again for this rotation until ${heldUntil.toISOString()}`;
    // Read again after the awaits: a reconcile may have run meanwhile and started the drain this
    // cancels (it saw the operator's request before it was cleared). Nothing awaits from here on.
    const current = this.instance(instanceId);
    const draining = current.status === 'draining' && CANCELLABLE.has(current.drainReason ?? '');
    if (draining) {
      this.ctx.store.transition(instanceId, 'running', { drainStartedAt: null, drainDeadline: null, drainReason: null, drainAckedAt: null }, this.auditEntry(current, 'drainCancelled', current.drainReason ?? reason, actor, detail));
      void writeDrainTags(this.ctx, current, { [TAG.drainStartedAt]: '', [TAG.drainDeadline]: '', [TAG.drainReason]: '', [TAG.drainCancelledAt]: new Date(now).toISOString() });
      this.deps.notifyDrainCancelled?.(instanceId);
    } else {
      this.audit(current, 'drainCancelled', reason, actor, detail);
    }
    this.ctx.markDirty(record.tenant, record.group, 'operator', Priority.high);
    return { instanceId, heldUntil };
  }

  /** Ends a drain now: the instance is deleted. */
  async forceDrain(instanceId: string, actor: string): Promise<{ instanceId: string }> {
    this.requireLeader(`forcing the drain of ${instanceId}`);
    const record = this.instance(instanceId);
    if (record.status !== 'draining') throw new ConflictError(`instance ${instanceId} is not draining (status ${record.status})`);
    this.ctx.store.transaction(() => {
      this.ctx.store.updateInstance(instanceId, { drainAckedAt: this.ctx.clock.now() });
      this.audit(record, 'drainForced', record.drainReason ?? 'drain', actor, 'drain ended by force; deleting now');
    });
    this.ctx.markDirty(record.tenant, record.group, 'operator', Priority.urgent);
    return { instanceId };
  }

  /** Protects an instance from voluntary disruption until `until` (it ends by itself). */
  async protect(instanceId: string, until: Date, actor: string): Promise<{ instanceId: string; protectedUntil: Date }> {
    const now = this.ctx.clock.nowMs();
    if (!(until.getTime() > now)) throw new InvalidRequestError('protection must end in the future');
    if (until.getTime() - now > MAX_PROTECTION_MS) throw new InvalidRequestError('protection may last at most 30d');
    this.requireLeader(`protecting instance ${instanceId}`);
    const record = this.instance(instanceId);
    if (record.status !== 'running' && record.status !== 'creating') throw new ConflictError(`instance ${instanceId} is ${record.status}; only an instance in service can be protected`);
    await this.ctx.operatorState().set(keys.protection(instanceId), { until: until.toISOString(), at: new Date(now).toISOString(), by: actor } satisfies Protection);
    this.audit(record, 'protect', 'operator', actor, `protected until ${until.toISOString()}`);
    this.ctx.markDirty(record.tenant, record.group, 'operator', Priority.normal);
    return { instanceId, protectedUntil: until };
  }

  /**
   * Completes an instance's pending launch hook: `continue` puts it in service (once it reports
   * health), `abandon` has it replaced (the next plan deletes it, reason launchHookAbandoned).
   * ConflictError when no hook is pending (none configured, already completed) or the instance
   * is not running (still being created, or leaving).
   */
  async completeLaunchHook(instanceId: string, result: LaunchHookResult, actor: string): Promise<{ instanceId: string; result: LaunchHookResult; launchHook: LaunchHookState }> {
    this.requireLeader(`completing the launch hook of ${instanceId}`);
    const record = this.instance(instanceId);
    if (record.launchHook !== 'pending') {
      const why = record.launchHook === null ? 'its group had no launch hook when it was created' : `it was ${record.launchHook} already`;
      throw new ConflictError(`instance ${instanceId} has no launch hook pending: ${why}`);
    }
    if (record.status !== 'running') throw new ConflictError(`instance ${instanceId} is ${record.status}; its launch hook is completed once it runs`);
    const launchHook: LaunchHookState = result === 'continue' ? 'continued' : 'abandoned';
    const action: AuditAction = result === 'continue' ? 'launchHookContinued' : 'launchHookAbandoned';
    const detail = result === 'continue' ? 'launch hook completed: in service once healthy' : 'launch hook abandoned: the instance is replaced';
    this.ctx.store.transaction(() => {
      // (Read again inside the write: a timeout or another caller may have completed it meanwhile.)
      if (this.ctx.store.getInstance(instanceId)?.launchHook !== 'pending') throw new ConflictError(`instance ${instanceId} has no launch hook pending: it was completed meanwhile`);
      this.ctx.store.updateInstance(instanceId, { launchHook, launchHookAt: this.ctx.clock.now() });
      this.audit(record, action, result, actor, detail);
    });
    void writeLaunchHookTag(this.ctx, record, launchHook === 'continued' ? 'continued' : 'abandoned');
    this.ctx.markDirty(record.tenant, record.group, 'launchHook', result === 'abandon' ? Priority.urgent : Priority.high);
    return { instanceId, result, launchHook };
  }

  async unprotect(instanceId: string, actor: string): Promise<{ instanceId: string }> {
    this.requireLeader(`unprotecting instance ${instanceId}`);
    const record = this.instance(instanceId);
    const state = this.ctx.operatorState();
    if (!state.get<Protection>(keys.protection(instanceId))) throw new ConflictError(`instance ${instanceId} is not protected`);
    await state.set(keys.protection(instanceId), null);
    this.audit(record, 'unprotect', 'operator', actor, 'protection removed');
    this.ctx.markDirty(record.tenant, record.group, 'operator', Priority.normal);
    return { instanceId };
  }
}
