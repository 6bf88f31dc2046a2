/**
 * What each event says happened, recorded before the group is planned: an instance checked with
 * the provider (and re-polled after its agent disconnected), gone at the provider, its drain
 * acknowledged, a termination notice. Provider reads happen here (CheckInstance); nothing is
 * changed at the provider — the plan decides, the executor acts.
 */
import { InstanceNotFoundError } from '../errors/index.js';
import { isTerminalStatus, type ProviderStatus } from '../providers/index.js';
import { Priority } from '../queue/priority.js';
import { DISCONNECT_POLL_DELAYS_MS } from './backoff.js';
import { timedCall } from './calls.js';
import type { Context } from './context.js';
import { EventType, describeEvent, groupKeyOf, type GroupEvent, type InstanceEvent } from './events.js';
import { TimerKey } from './keys.js';

type EventOf<T extends InstanceEvent['type']> = Extract<InstanceEvent, { type: T }>;

export class FactRecorder {
  constructor(
    private readonly ctx: Context,
    /** Timeout of a CheckInstance status call. */
    private readonly statusTimeoutMs: number,
  ) {}

  /** Records what an event says happened (a GroupChanged says nothing by itself). */
  async record(event: GroupEvent): Promise<void> {
    switch (event.type) {
      case EventType.GroupChanged:
        return;
      case EventType.CheckInstance:
        return this.checkInstance(event);
      case EventType.InstanceDeleted:
        return this.instanceDeleted(event);
      case EventType.DrainAcked:
        return this.drainAcked(event);
      case EventType.TerminationNotice:
        return this.terminationNotice(event);
    }
  }

  /**
   * Asks the provider about an instance. After a disconnect (cause "disconnect") it is asked again
   * on a schedule while it runs and has not reported since, so that a dead agent on a live
   * instance is noticed.
   */
  private async checkInstance(event: EventOf<'CheckInstance'>): Promise<void> {
    const { ctx } = this;
    const { tenant, groupKey: group, instanceId: id } = event;
    const record = ctx.store.getInstance(id);
    if (!record || record.status === 'deleted' || record.tenant !== tenant || record.group !== group) return;
    if (!record.providerId) return; // Not created yet: nothing to ask.
    if (!ctx.leader()) return;
    const pollKey = TimerKey.poll(groupKeyOf(tenant, group), id);
    const disconnectedAt = event.cause === 'disconnect' ? (event.timestamp?.getTime() ?? ctx.clock.nowMs()) : null;
    if (disconnectedAt !== null && (event.attempt ?? 0) > 0 && record.healthAt && record.healthAt.getTime() > disconnectedAt) {
      ctx.timers.clear(pollKey);
      return; // It reported after the disconnect: polling stops.
    }
    const providerId = record.providerId;
    let status: ProviderStatus | 'notFound';
    try {
      status = await ctx.gate.run('read', Priority.urgent, () =>
        timedCall(ctx, 'status', this.statusTimeoutMs, `checking instance ${id}`, () => ctx.provider.status(providerId), (err) => err instanceof InstanceNotFoundError),
      );
    } catch (err) {
      if (!(err instanceof InstanceNotFoundError)) throw err;
      status = 'notFound';
    }
    if (ctx.halted()) return;
    const alive = status === 'running' || status === 'pending';
    const judged = record.status === 'running' && status !== 'notFound' && isTerminalStatus(status);
    ctx.store.updateInstance(id, {
      providerStatus: status,
      providerCheckedAt: ctx.clock.now(),
      // When a running instance was first seen stopped (or otherwise terminal): the health brake's
      // settle delay runs from there, not from the latest re-poll. Seen alive again: forgotten.
      ...(judged && record.unhealthyAt === null ? { unhealthyAt: ctx.clock.now() } : {}),
      ...(alive && record.status === 'running' && record.unhealthyAt !== null ? { unhealthyAt: null } : {}),
    });
    ctx.log.debug({ tenant, group, instanceId: id, status, cause: event.cause }, 'instance checked');
    if (disconnectedAt === null || !alive) {
      ctx.timers.clear(pollKey);
      return;
    }
    const attempt = event.attempt ?? 0;
    const fresh = ctx.store.getInstance(id);
    const reportedSince = fresh?.healthAt && fresh.healthAt.getTime() > disconnectedAt;
    const delay = DISCONNECT_POLL_DELAYS_MS[attempt];
    if (reportedSince || delay === undefined) {
      ctx.timers.clear(pollKey);
      return;
    }
    ctx.timers.set(pollKey, ctx.clock.nowMs() + delay, {
      type: EventType.CheckInstance,
      tenant,
      groupKey: group,
      instanceId: id,
      cause: 'disconnect',
      timestamp: new Date(disconnectedAt),
      attempt: attempt + 1,
    });
  }

  private async instanceDeleted(event: EventOf<'InstanceDeleted'>): Promise<void> {
    const record = this.ctx.store.getInstance(event.instanceId);
    if (!record || record.status === 'deleted') return;
    this.ctx.store.updateInstance(record.id, { providerStatus: 'notFound', providerCheckedAt: this.ctx.clock.now() });
  }

  /** The drain is complete: the plan deletes the instance. An ack for one not draining is audited and reported. */
  private async drainAcked(event: EventOf<'DrainAcked'>): Promise<void> {
    const { ctx } = this;
    const { tenant, groupKey: group, instanceId: id } = event;
    const record = ctx.store.getInstance(id);
    const now = ctx.clock.now();
    const actor = event.cause ?? 'reconciler';
    if (!record || record.status !== 'draining' || record.tenant !== tenant || record.group !== group) {
      const state = record ? record.status : 'unknown';
      const message = `drain ack for instance ${id}, which is not draining (${state}); nothing deleted`;
      ctx.store.appendAudit({ tenant, group, at: now, instanceId: id, action: 'ackIgnored', reason: 'notDraining', event: describeEvent(event), actor, detail: message, epoch: ctx.epoch() });
      ctx.log.warn({ tenant, group, instanceId: id, status: state }, 'drain ack for an instance that is not draining');
      ctx.notifyError(groupKeyOf(tenant, group), id, message);
      return;
    }
    if (record.drainAckedAt) return; // A repeated ack changes nothing.
    ctx.store.transaction(() => {
      ctx.store.updateInstance(id, { drainAckedAt: now });
      ctx.store.appendAudit({ tenant, group, at: now, instanceId: id, action: 'drainAcked', reason: record.drainReason ?? 'drain', event: describeEvent(event), actor, epoch: ctx.epoch() });
    });
  }

  /** The provider terminates the instance at the notice's time: a drain in progress must end by then. */
  private async terminationNotice(event: EventOf<'TerminationNotice'>): Promise<void> {
    const { ctx } = this;
    const { tenant, groupKey: group, instanceId: id } = event;
    const record = ctx.store.getInstance(id);
    if (!record || record.status === 'deleted' || record.status === 'deleting' || record.tenant !== tenant || record.group !== group) return;
    if (record.noticeDeadline) return; // Repeated notices do nothing more.
    const now = ctx.clock.now();
    const deadline = event.timestamp ?? new Date(now.getTime() + ctx.configLoader.getCurrent().shard.defaultNoticeWindow);
    ctx.store.transaction(() => {
      const shortened = record.status === 'draining' && record.drainDeadline && record.drainDeadline.getTime() > deadline.getTime();
      ctx.store.updateInstance(id, { noticeAt: now, noticeDeadline: deadline, ...(shortened ? { drainDeadline: deadline } : {}) });
      ctx.store.appendAudit({
        tenant,
        group,
        at: now,
        instanceId: id,
        action: 'notice',
        reason: 'terminationNotice',
        event: describeEvent(event),
        detail: `the provider terminates it at ${deadline.toISOString()}`,
        epoch: ctx.epoch(),
      });
    });
    ctx.log.info({ tenant, group, instanceId: id, deadline }, 'termination notice recorded');
  }
}
