/**
 * What goes into the outbox: the rows of an audit entry's event (the store's `OutboxRouter`,
 * run inside the entry's transaction), a test event, a drain-deadline warning. Pure but for the
 * settings it reads.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../store/types.js';
import type { NewOutboxRow, OutboxRouter } from '../store/outbox.js';
import { eventOfAudit, orderKeyOf, type NotificationEvent } from './events.js';
import { wants, type NotificationEndpoint, type NotificationSettings } from './settings.js';

/** The outbox row that sends `event` (as JSON `payload`) to `endpoint`. */
export function outboxRow(event: NotificationEvent, payload: string, endpoint: NotificationEndpoint, createdAt: number): NewOutboxRow {
  return {
    eventId: event.id,
    endpoint: endpoint.name,
    eventType: event.type,
    tenant: event.tenant,
    orderKey: orderKeyOf(event),
    payload,
    createdAt,
    giveUpAt: createdAt + endpoint.retryForMs,
  };
}

/** Rows for every endpoint that wants `event`. */
export function rowsFor(event: NotificationEvent, settings: NotificationSettings, createdAt: number): NewOutboxRow[] {
  const rows: NewOutboxRow[] = [];
  let payload: string | undefined;
  for (const endpoint of settings.endpoints.values()) {
    if (!wants(endpoint, event.type, event.tenant)) continue;
    payload ??= JSON.stringify(event);
    rows.push(outboxRow(event, payload, endpoint, createdAt));
  }
  return rows;
}

/** The store's router: an audit entry's event, for the endpoints in force when it is recorded. */
export function auditRouter(settings: () => NotificationSettings): OutboxRouter {
  return (entry: AuditEntry) => {
    const s = settings();
    if (s.endpoints.size === 0) return [];
    const event = eventOfAudit(entry, s.shard);
    return event ? rowsFor(event, s, entry.at.getTime()) : [];
  };
}

/** A test event for one endpoint (`drover notifications test`). */
export function testEvent(shard: string, at: Date, actor: string): NotificationEvent {
  return {
    id: `ev-${shard}-test-${randomUUID()}`,
    type: 'test',
    at: at.toISOString(),
    shard,
    tenant: null,
    group: null,
    instanceId: null,
    reason: 'test',
    detail: `a test event sent by ${actor}; no action is needed`,
    actor,
    auditSeq: null,
  };
}

/** Longest warning before a drain's deadline. */
export const DEADLINE_NEAR_MAX_LEAD_MS = 5 * 60_000;

/** When a drain from `startedAt` to `deadline` counts as near its deadline: a fifth of its time left, at most 5 minutes. */
export function deadlineNearAt(startedAt: number | null, deadline: number): number {
  const span = startedAt === null ? DEADLINE_NEAR_MAX_LEAD_MS * 5 : Math.max(0, deadline - startedAt);
  return deadline - Math.min(DEADLINE_NEAR_MAX_LEAD_MS, Math.floor(span / 5));
}

/** The drainDeadlineNear event of one drain; its id names the deadline, so an extended drain warns again. */
export function deadlineNearEvent(shard: string, drain: { id: string; tenant: string; group: string; drainDeadline: number; drainReason: string | null }, at: Date): NotificationEvent {
  const deadline = new Date(drain.drainDeadline).toISOString();
  return {
    id: `ev-${shard}-dn-${drain.id}-${drain.drainDeadline}`,
    type: 'drainDeadlineNear',
    at: at.toISOString(),
    shard,
    tenant: drain.tenant,
    group: drain.group,
    instanceId: drain.id,
    reason: drain.drainReason,
    detail: `the drain is not acknowledged and ends at ${deadline}; the instance is deleted then`,
    actor: 'reconciler',
    auditSeq: null,
    drainDeadline: deadline,
  };
}
