/**
 * The executor applies a plan: it records each step durably before acting on it, checks
 * leadership before every mutation, and sends provider calls through the CallGate without
 * waiting for them (their completions are handled here and mark the group for another look).
 */
import { InstanceNotFoundError, NotLeaderError, errorMessage, isRetryable, isThrottled } from '../errors/index.js';
import { TAG } from '../providers/index.js';
import { Priority } from '../queue/priority.js';
import { keys } from '../state/index.js';
import type { InstanceRecord } from '../store/index.js';
import { withTimeout } from '../util/timeout.js';
import { backoffDelay } from './backoff.js';
import { timedCall } from './calls.js';
import { HoldKey } from './keys.js';
import type { Context } from './context.js';
import { EventType, describeEvent, groupKeyOf, type ReconcileEvent } from './events.js';
import type { Plan, PlanAction } from './plan.js';

/** Order in which a plan's actions are applied: free capacity first, then use it. */
const ORDER: Record<PlanAction['kind'], number> = {
  forget: 0,
  cancelCreate: 1,
  launchHook: 2,
  delete: 3,
  dispatchDelete: 4,
  drain: 5,
  check: 6,
  create: 7,
  dispatchCreate: 8,
};

export interface ApplyResult {
  /** Actions not applied because leadership was lost part-way. */
  skippedNotLeader: number;
}

export class Executor {
  /**
   * Creates in flight per group ("tenant/group"). A create's completion replans its group only
   * when it is the group's last one in flight: replanning a large group on every completion of
   * a scale-out costs O(size) each time, O(size²) in all, and starves the event loop.
   */
  private readonly createsInFlight = new Map<string, number>();
  /**
   * Creates recorded by this process and not yet settled. A create recorded before it (by a
   * process that crashed) may have reached the provider even with no attempt counted.
   */
  private readonly recordedHere = new Set<string>();
  /** Creates per group dispatched but not yet started: waiting for a rate-limit slot. */
  private readonly createsWaiting = new Map<string, number>();

  /** Creates of a group waiting for the provider rate limit or the create spacing. */
  waitingCreates(groupKey: string): number {
    return this.createsWaiting.get(groupKey) ?? 0;
  }

  constructor(private readonly ctx: Context) {}

  /** Applies `plan`. `events` are the events that led to it (for the audit). */
  apply(plan: Plan, events: readonly ReconcileEvent[]): ApplyResult {
    const { ctx } = this;
    const primary = events[0];
    const eventFor = (instanceId: string | null): string | null => {
      const own = instanceId ? events.find((e) => e.instanceId === instanceId) : undefined;
      const chosen = own ?? primary;
      return chosen ? describeEvent(chosen) : null;
    };
    const actions = [...plan.actions].sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
    const creates: Array<Extract<PlanAction, { kind: 'create' }>> = [];
    let skipped = 0;
    for (const action of actions) {
      if (ctx.halted()) return { skippedNotLeader: skipped };
      if (action.kind === 'create') {
        creates.push(action);
        continue;
      }
      if (action.kind !== 'forget' && action.kind !== 'check' && !ctx.leader()) {
        skipped++;
        continue;
      }
      this.applyOne(plan, action, eventFor(action.instanceId));
    }
    if (creates.length > 0) {
      if (ctx.leader()) this.createAll(plan, creates, eventFor(null));
      else skipped += creates.length;
    }
    if (skipped > 0) ctx.log.info({ tenant: plan.tenant, group: plan.group, skipped }, 'leadership lost while applying a plan; rest skipped');
    return { skippedNotLeader: skipped };
  }

  private applyOne(plan: Plan, action: Exclude<PlanAction, { kind: 'create' }>, event: string | null): void {
    const { ctx } = this;
    const now = ctx.clock.now();
    const { tenant, group } = plan;
    const audit = { tenant, group, at: now, event, epoch: ctx.epoch() };
    switch (action.kind) {
      case 'forget': {
        const before = ctx.store.getInstance(action.instanceId);
        ctx.store.transition(
          action.instanceId,
          'deleted',
          { deletedAt: now, deleteReason: before?.status === 'deleting' ? (before.deleteReason ?? 'vanished') : 'vanished' },
          { ...audit, action: 'vanished', reason: action.reason, detail: action.message },
        );
        ctx.log.info({ tenant, group, instanceId: action.instanceId }, 'instance gone at the provider');
        return;
      }
      case 'cancelCreate':
        // An earlier attempt (one that failed or timed out, or one sent before a restart) may have
        // created the instance: it is looked up by its tag and deleted, not just forgotten.
        ctx.store.transition(action.instanceId, 'deleting', { deleteReason: 'cancelled', attempts: 0, nextAttemptAt: null, lastError: null }, { ...audit, action: 'cancel', reason: action.reason, detail: action.message });
        this.dispatchDelete(action.instanceId, tenant, group, Priority.normal);
        return;
      case 'delete': {
        ctx.store.transition(action.instanceId, 'deleting', { deleteReason: action.reason, attempts: 0, nextAttemptAt: null, lastError: null }, { ...audit, action: 'delete', reason: action.reason, detail: action.message });
        ctx.log.info({ tenant, group, instanceId: action.instanceId, reason: action.reason }, 'instance delete started');
        this.dispatchDelete(action.instanceId, tenant, group, action.priority);
        return;
      }
      case 'dispatchDelete':
        this.dispatchDelete(action.instanceId, tenant, group, Priority.normal);
        return;
      case 'drain': {
        const record = ctx.store.transition(
          action.instanceId,
          'draining',
          { drainStartedAt: now, drainDeadline: action.deadline, drainReason: action.reason, drainAckedAt: null, ...(action.reason === 'unhealthy' ? { unhealthyAt: action.unhealthyAt ?? now } : {}) },
          { ...audit, action: 'drain', reason: action.reason, detail: `${action.message}; deadline ${action.deadline.toISOString()}` },
        );
        ctx.observer.drainStarted?.(action.reason);
        if (action.reason === 'operator') this.dropOperatorState(action.instanceId, [keys.drainRequest(action.instanceId)]);
        ctx.log.info({ tenant, group, instanceId: action.instanceId, reason: action.reason, deadline: action.deadline }, 'instance drain started');
        const notify = (): void => ctx.notifyDrain(action.instanceId, groupKeyOf(tenant, group), action.reason, action.unhealthyAt ?? now, action.deadline);
        // The drain becomes shared truth (provider tags) before anyone is told: a leader that dies
        // in between leaves no drain that a successor cannot see. Without tags, tell at once.
        if (record?.providerId && ctx.provider.setTags) {
          void this.tagDrain(record, now, action.deadline, action.reason).then((outcome) => {
            if (outcome !== 'notLeader' && !ctx.halted()) notify();
          });
        } else {
          notify();
        }
        return;
      }
      case 'check':
        this.enqueueCheck(tenant, group, action.instanceId, action.cause);
        return;
      case 'launchHook': {
        const record = ctx.store.getInstance(action.instanceId);
        if (!record || record.launchHook !== 'pending') return; // completed meanwhile (by an operator or the instance)
        ctx.store.transaction(() => {
          ctx.store.updateInstance(action.instanceId, { launchHook: action.result === 'continue' ? 'continued' : 'abandoned', launchHookAt: now });
          ctx.store.appendAudit({ ...audit, instanceId: action.instanceId, action: action.cause === 'timeout' ? 'launchHookTimedOut' : 'launchHookContinued', reason: action.result, detail: action.message });
        });
        ctx.log.info({ tenant, group, instanceId: action.instanceId, result: action.result, cause: action.cause }, 'launch hook completed by the reconciler');
        void writeLaunchHookTag(ctx, record, action.result === 'continue' ? 'continued' : 'abandoned');
        // Continued: in service from now on; abandoned: the next plan replaces it.
        ctx.markDirty(tenant, group, 'launchHook', action.result === 'abandon' ? Priority.urgent : Priority.high);
        return;
      }
      case 'dispatchCreate': {
        const record = ctx.store.getInstance(action.instanceId);
        if (record) this.dispatchCreate(record, action.priority);
        return;
      }
    }
  }

  /** Set by the Reconciler: queues a CheckInstance event. */
  enqueueCheck: (tenant: string, group: string, instanceId: string, cause: string) => void = () => undefined;

  private createAll(plan: Plan, creates: ReadonlyArray<Extract<PlanAction, { kind: 'create' }>>, event: string | null): void {
    const { ctx } = this;
    const settings = ctx.settings(plan.tenant, plan.group);
    if (!settings) return;
    const now = ctx.clock.now();
    const records = ctx.store.transaction(() =>
      creates.map((action) => {
        let id = ctx.newInstanceId();
        while (ctx.store.getInstance(id)) id = ctx.newInstanceId(); // never reuse an id, even with a replayed random source
        const record = ctx.store.insertInstance({
          id,
          tenant: plan.tenant,
          group: plan.group,
          templateName: settings.templateName,
          templateHash: settings.templateHash,
          createReason: action.reason,
          replaces: action.replaces,
          createdAt: now,
          // Held out of service until its launch hook is completed (the group's hooks.launch).
          launchHook: settings.launchHook ? 'pending' : null,
        });
        this.recordedHere.add(record.id);
        ctx.store.appendAudit({
          tenant: plan.tenant,
          group: plan.group,
          at: now,
          instanceId: record.id,
          action: 'create',
          reason: action.reason,
          event,
          detail: action.message,
          epoch: ctx.epoch(),
        });
        return { record, priority: action.priority };
      }),
    );
    ctx.log.info({ tenant: plan.tenant, group: plan.group, count: records.length, reason: creates[0]?.reason }, 'instance creates recorded');
    for (const { record, priority } of records) this.dispatchCreate(record, priority);
  }

  /** Sends a recorded create to the provider (same instance id, so a repeat is idempotent). */
  dispatchCreate(record: InstanceRecord, priority: Priority): void {
    const { ctx } = this;
    if (ctx.inFlight.has(record.id)) return;
    const settings = ctx.settings(record.tenant, record.group);
    if (!settings) return;
    ctx.inFlight.set(record.id, 'create');
    const groupKey = groupKeyOf(record.tenant, record.group);
    this.createsInFlight.set(groupKey, (this.createsInFlight.get(groupKey) ?? 0) + 1);
    this.createsWaiting.set(groupKey, (this.createsWaiting.get(groupKey) ?? 0) + 1);
    const action = `creating instance ${record.id}`;
    // Only the first attempt, sent by the process that recorded the create, made the instance with
    // the template it sends: an earlier attempt that timed out may have made it with the template
    // then in force, and the provider returns that one to a retry (same instance id).
    const firstAttempt = record.attempts === 0 && this.recordedHere.has(record.id);
    let started = false;
    ctx.gate
      .run('create', priority, async () => {
        // The gate runs this again when the provider throttled it: it stopped waiting only once.
        if (!started) {
          started = true;
          const waiting = (this.createsWaiting.get(groupKey) ?? 1) - 1;
          if (waiting > 0) this.createsWaiting.set(groupKey, waiting);
          else this.createsWaiting.delete(groupKey);
        }
        if (!ctx.leader() || ctx.halted()) throw new NotLeaderError(action);
        const response = await timedCall(ctx, 'create', ctx.callTimeoutMs(), action, () =>
          ctx.instanceManager.createInstance({
            instanceId: record.id,
            tenant: record.tenant,
            group: record.group,
            templateName: settings.templateName,
            template: settings.template,
            templateHash: settings.templateHash,
            reason: record.createReason,
            createdAt: record.createdAt,
            ...(record.launchHook === 'pending' ? { launchHook: 'pending' as const } : {}),
          }),
        );
        return { response, templateHash: firstAttempt ? settings.templateHash : null };
      })
      .then(
        ({ response, templateHash }) => this.onCreated(record, response.providerId, templateHash, response.launchDetail),
        (err: unknown) => this.onCreateFailed(record, err),
      )
      .catch((err: unknown) => ctx.log.error({ err, instanceId: record.id }, 'handling a create result failed'));
  }

  /** Counts a create of the group as finished; true when none of the group's is in flight any more. */
  private createFinished(record: InstanceRecord): boolean {
    const groupKey = groupKeyOf(record.tenant, record.group);
    const left = (this.createsInFlight.get(groupKey) ?? 1) - 1;
    if (left > 0) this.createsInFlight.set(groupKey, left);
    else this.createsInFlight.delete(groupKey);
    return left <= 0;
  }

  /** `templateHash`: the template the instance is known to run (null: not known; the recorded one stays, and shows drift if the config moved on). */
  private onCreated(record: InstanceRecord, providerId: string, templateHash: string | null, launchDetail: string | undefined): void {
    const { ctx } = this;
    ctx.inFlight.delete(record.id);
    this.recordedHere.delete(record.id);
    const lastOfGroup = this.createFinished(record);
    if (ctx.halted()) return;
    const now = ctx.clock.now();
    const current = ctx.store.getInstance(record.id);
    const audit = { tenant: record.tenant, group: record.group, at: now, instanceId: record.id, epoch: ctx.epoch() };
    if (!current || current.status === 'deleted') {
      // Cancelled while the call was out: the instance exists now, so it must go.
      if (current) {
        ctx.store.transition(record.id, 'deleting', { providerId, deleteReason: 'cancelled', attempts: 0, nextAttemptAt: null, deletedAt: null }, { ...audit, action: 'delete', reason: 'cancelled', detail: `created as ${providerId} after its create was cancelled` });
      }
      ctx.markDirty(record.tenant, record.group, 'created', Priority.high);
      return;
    }
    if (current.status === 'creating') {
      ctx.store.transition(
        record.id,
        'running',
        { providerId, confirmedAt: now, ...(templateHash === null ? {} : { templateHash }), attempts: 0, nextAttemptAt: null, lastError: null },
        { ...audit, action: 'created', reason: record.createReason, detail: launchDetail ? `provider id ${providerId}; ${launchDetail}` : `provider id ${providerId}` },
      );
    }
    // A confirmed create changes no decision while the group has others in flight; the last
    // one's completion replans (startup deadlines, surplus creates waiting for an answer).
    if (lastOfGroup) ctx.markDirty(record.tenant, record.group, 'created', Priority.bulk);
  }

  private onCreateFailed(record: InstanceRecord, err: unknown): void {
    const { ctx } = this;
    ctx.inFlight.delete(record.id);
    this.createFinished(record);
    if (ctx.halted() || err instanceof NotLeaderError) return;
    const current = ctx.store.getInstance(record.id);
    if (!current || current.status !== 'creating') return;
    const now = ctx.clock.now();
    const attempts = current.attempts + 1;
    const message = errorMessage(err);
    const key = groupKeyOf(record.tenant, record.group);
    const audit = { tenant: record.tenant, group: record.group, at: now, instanceId: record.id, epoch: ctx.epoch() };
    if (isThrottled(err)) ctx.gate.backOff(1_000);
    if (!isRetryable(err) || attempts >= ctx.maxAttempts()) {
      const why = isRetryable(err) ? `gave up after ${attempts} attempts` : 'permanent error, not retried';
      const settings = ctx.settings(record.tenant, record.group);
      // Unless the provider refused the only attempt, an attempt may have created the instance
      // (a timeout says nothing; a process that crashed may have sent one): it is looked up by
      // its tag and deleted, not just forgotten.
      const mayExist = current.attempts > 0 || isRetryable(err) || !this.recordedHere.has(record.id);
      this.recordedHere.delete(record.id);
      ctx.store.transaction(() => {
        const failed = { ...audit, action: 'createFailed' as const, reason: record.createReason, detail: `${message} (${why})` };
        if (mayExist) ctx.store.transition(record.id, 'deleting', { deleteReason: 'createFailed', attempts: 0, nextAttemptAt: null, lastError: message }, failed);
        else ctx.store.transition(record.id, 'deleted', { deletedAt: now, deleteReason: 'createFailed', attempts, lastError: message }, failed);
        if (settings) {
          // A permanent refusal holds creates until the group changes; running out of retries
          // holds them for a pause (a long outage must not leave the group short for good).
          const key = isRetryable(err) ? HoldKey.afterRetries(settings.size, settings.templateHash) : HoldKey.permanent(settings.size, settings.templateHash);
          ctx.store.setCreateHold(record.tenant, record.group, { key, reason: `${message} (${why})`, at: now });
        }
      });
      ctx.log.error({ tenant: record.tenant, group: record.group, instanceId: record.id, err: message, attempts }, 'instance create failed for good');
      ctx.notifyError(
        key,
        record.id,
        `${message} (${why}; creates for the group wait for ${isRetryable(err) ? 'a pause of one resync interval' : 'a change of its size or template'}, or a restart or leadership win)`,
      );
      if (mayExist) this.dispatchDelete(record.id, record.tenant, record.group, Priority.normal);
    } else {
      const retryAt = new Date(now.getTime() + backoffDelay(attempts, ctx.random));
      ctx.store.transaction(() => {
        ctx.store.updateInstance(record.id, { attempts, nextAttemptAt: retryAt, lastError: message });
        ctx.store.appendAudit({ ...audit, action: 'createFailed', reason: record.createReason, detail: `${message}; retry ${attempts + 1} at ${retryAt.toISOString()}` });
      });
      ctx.log.warn({ tenant: record.tenant, group: record.group, instanceId: record.id, err: message, attempts, retryAt }, 'instance create failed; will retry');
      ctx.notifyError(key, record.id, message);
    }
    ctx.markDirty(record.tenant, record.group, 'createFailed', Priority.normal);
  }

  private dispatchDelete(instanceId: string, tenant: string, group: string, priority: Priority): void {
    const { ctx } = this;
    if (ctx.inFlight.has(instanceId)) return;
    ctx.inFlight.set(instanceId, 'delete');
    const action = `deleting instance ${instanceId}`;
    ctx.gate
      .run('delete', priority, async () => {
        if (!ctx.leader() || ctx.halted()) throw new NotLeaderError(action);
        await timedCall(ctx, 'delete', ctx.callTimeoutMs(), action, () => this.deleteAtProvider(instanceId, action));
      })
      .then(
        () => this.onDeleted(instanceId, tenant, group),
        (err: unknown) => (err instanceof InstanceNotFoundError ? this.onDeleted(instanceId, tenant, group) : this.onDeleteFailed(instanceId, tenant, group, err)),
      )
      .catch((err: unknown) => ctx.log.error({ err, instanceId }, 'handling a delete result failed'));
  }

  private onDeleted(instanceId: string, tenant: string, group: string): void {
    const { ctx } = this;
    ctx.inFlight.delete(instanceId);
    if (ctx.halted()) return;
    const now = ctx.clock.now();
    const current = ctx.store.getInstance(instanceId);
    if (!current || current.status === 'deleted') return;
    ctx.store.transition(
      instanceId,
      'deleted',
      { deletedAt: now, attempts: 0, nextAttemptAt: null },
      { tenant, group, at: now, action: 'deleted', reason: current.deleteReason ?? 'delete', epoch: ctx.epoch(), detail: current.providerId ? `provider id ${current.providerId}` : null },
    );
    ctx.observer.instanceDeleted?.(current.deleteReason ?? 'delete');
    this.dropOperatorState(instanceId, [keys.protection(instanceId), keys.hold(instanceId), keys.drainRequest(instanceId)]);
    ctx.log.info({ tenant, group, instanceId, reason: current.deleteReason }, 'instance deleted');
    ctx.markDirty(tenant, group, 'deleted', Priority.high);
  }

  private onDeleteFailed(instanceId: string, tenant: string, group: string, err: unknown): void {
    const { ctx } = this;
    ctx.inFlight.delete(instanceId);
    if (ctx.halted() || err instanceof NotLeaderError) return;
    const current = ctx.store.getInstance(instanceId);
    if (!current || current.status !== 'deleting') return;
    const now = ctx.clock.now();
    const message = errorMessage(err);
    const attempts = isRetryable(err) ? current.attempts + 1 : Math.max(ctx.maxAttempts(), current.attempts + 1);
    const retryAt = attempts >= ctx.maxAttempts() ? null : new Date(now.getTime() + backoffDelay(attempts, ctx.random));
    if (isThrottled(err)) ctx.gate.backOff(1_000);
    ctx.store.transaction(() => {
      ctx.store.updateInstance(instanceId, { attempts, nextAttemptAt: retryAt, lastError: message });
      ctx.store.appendAudit({
        tenant,
        group,
        at: now,
        instanceId,
        action: 'deleteFailed',
        reason: current.deleteReason ?? 'delete',
        epoch: ctx.epoch(),
        detail: retryAt ? `${message}; retry at ${retryAt.toISOString()}` : `${message}; given up until the next full reconcile`,
      });
    });
    ctx.log.warn({ tenant, group, instanceId, err: message, attempts }, 'instance delete failed');
    ctx.notifyError(groupKeyOf(tenant, group), instanceId, message);
    ctx.markDirty(tenant, group, 'deleteFailed', Priority.normal);
  }

  /** Removes operator state that no longer applies (a started drain's request, a deleted instance's protection). */
  private dropOperatorState(instanceId: string, stateKeys: readonly string[]): void {
    const state = this.ctx.operatorState();
    for (const key of stateKeys) {
      if (state.get(key) === undefined) continue;
      state.set(key, null).catch((err: unknown) => this.ctx.log.warn({ instanceId, key, err: errorMessage(err) }, 'clearing operator state failed'));
    }
  }

  /**
   * Deletes an instance at the provider. One whose create was never confirmed has no provider id
   * yet: it is looked up by its instance-id tag first, and leadership is checked again before the
   * delete, since the lookup took time (the lookup inside `deleteInstance` would not check).
   */
  private async deleteAtProvider(instanceId: string, action: string): Promise<void> {
    const { ctx } = this;
    if (!ctx.store.getInstance(instanceId)?.providerId) {
      const [found] = await ctx.provider.list({ [TAG.instanceId]: instanceId });
      if (!ctx.leader() || ctx.halted()) throw new NotLeaderError(action);
      if (!found) return; // never created: nothing to delete
      ctx.store.updateInstance(instanceId, { providerId: found.providerId });
    }
    await ctx.instanceManager.deleteInstance(instanceId);
  }

  /** Writes the drain's start, deadline and reason as provider tags (shared truth for a new leader). */
  private tagDrain(record: InstanceRecord, startedAt: Date, deadline: Date, reason: string): Promise<TagOutcome> {
    return writeDrainTags(this.ctx, record, {
      [TAG.drainStartedAt]: startedAt.toISOString(),
      [TAG.drainDeadline]: deadline.toISOString(),
      [TAG.drainReason]: reason,
    });
  }
}

export type TagOutcome = 'written' | 'skipped' | 'notLeader' | 'failed';

/**
 * Writes drain bookkeeping as provider tags, through the CallGate and only while leader. Never
 * rejects: failures are logged (the store keeps the drain; the tags are the copy a future leader
 * reads) and reported in the outcome.
 */
export function writeDrainTags(ctx: Context, record: InstanceRecord, tags: Record<string, string>): Promise<TagOutcome> {
  const setTags = ctx.provider.setTags?.bind(ctx.provider);
  const providerId = record.providerId;
  if (!setTags || !providerId) return Promise.resolve('skipped');
  const action = `tagging the drain of ${record.id}`;
  return ctx.gate
    .run('write', Priority.high, async () => {
      if (!ctx.leader() || ctx.halted()) throw new NotLeaderError(action);
      await withTimeout(ctx.clock, ctx.callTimeoutMs(), action, setTags(providerId, tags));
    })
    .then(
      (): TagOutcome => 'written',
      (err: unknown): TagOutcome => {
        if (err instanceof NotLeaderError) return 'notLeader';
        if (err instanceof InstanceNotFoundError) return 'failed';
        ctx.log.warn({ instanceId: record.id, err: errorMessage(err) }, 'writing drain tags failed');
        return 'failed';
      },
    );
}

/**
 * Writes a completed launch hook's state as a provider tag (the copy a new leader adopting the
 * instance reads). Never rejects; a failure is logged (writeDrainTags' contract).
 */
export function writeLaunchHookTag(ctx: Context, record: InstanceRecord, state: 'continued' | 'abandoned'): Promise<TagOutcome> {
  return writeDrainTags(ctx, record, { [TAG.launchHook]: state });
}

/** A CheckInstance event for an instance. */
export function checkEvent(tenant: string, group: string, instanceId: string, cause: string): ReconcileEvent {
  return { type: EventType.CheckInstance, tenant, groupKey: group, instanceId, cause };
}
