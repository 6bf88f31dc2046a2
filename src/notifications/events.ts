/**
 * The notification event (the body of a `json` delivery), how an audit entry becomes one, and
 * the `slack` rendering. Pure.
 */
import type { AuditEntry } from '../store/types.js';
import { EVENT_OF_AUDIT_ACTION, type NotificationEventType } from './catalogue.js';

/** What a receiver gets (format `json`). Fields are stable; new ones may be added. */
export interface NotificationEvent {
  /** Unique per event, the same on every retry and for every endpoint: dedupe by it. */
  id: string;
  type: NotificationEventType;
  /** When the fact happened (ISO 8601). */
  at: string;
  shard: string;
  tenant: string | null;
  group: string | null;
  instanceId: string | null;
  /** Why (a drain's reason, a delete's reason, ...), as in the audit. */
  reason: string | null;
  /** One sentence with the particulars, as in the audit. */
  detail: string | null;
  /** Who did it: "reconciler", an operator's token name, "workload:<id>", "autoscale", ... */
  actor: string | null;
  /** The audit entry it comes from (`drover explain`, `GET /v1/audit`), when it comes from one. */
  auditSeq: number | null;
  /** drainDeadlineNear: the drain's deadline (ISO 8601). */
  drainDeadline?: string;
  /** launchHookCompleted: how the hook ended, and whether by its timeout (`onTimeout`). */
  launchHook?: { result: 'continue' | 'abandon'; timedOut: boolean };
}

/** The result a launch hook audit entry records (its reason is the result). */
function launchHookOf(entry: AuditEntry): NotificationEvent['launchHook'] {
  const timedOut = entry.action === 'launchHookTimedOut';
  const result = entry.action === 'launchHookAbandoned' || (timedOut && entry.reason === 'abandon') ? 'abandon' : 'continue';
  return { result, timedOut };
}

/** The event an audit entry is, or null when it is none. */
export function eventOfAudit(entry: AuditEntry, shard: string): NotificationEvent | null {
  const type = EVENT_OF_AUDIT_ACTION[entry.action];
  if (!type) return null;
  return {
    id: `ev-${shard}-${entry.seq}`,
    type,
    at: entry.at.toISOString(),
    shard,
    tenant: entry.tenant,
    group: entry.group,
    instanceId: entry.instanceId,
    reason: entry.reason,
    detail: entry.detail,
    actor: entry.actor,
    auditSeq: entry.seq,
    ...(type === 'launchHookCompleted' ? { launchHook: launchHookOf(entry) } : {}),
  };
}

/** Events with the same key go to an endpoint in order: an instance's, else its group's. */
export function orderKeyOf(event: Pick<NotificationEvent, 'instanceId' | 'tenant' | 'group' | 'id' | 'type'>): string {
  if (event.instanceId) return `instance:${event.instanceId}`;
  if (event.tenant && event.group) return `group:${event.tenant}/${event.group}`;
  return `event:${event.id}`;
}

/** The body sent for `event` in `format`. `json` is the event itself. */
export function renderBody(event: NotificationEvent, format: 'json' | 'slack'): string {
  if (format === 'json') return JSON.stringify(event);
  return JSON.stringify({ text: slackText(event) });
}

/** Slack reads &, < and > as markup: escaped as its docs ask. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One line for a chat channel: what, where, why. */
export function slackText(event: NotificationEvent): string {
  const where = [event.tenant && event.group ? `${event.tenant}/${event.group}` : null, event.instanceId].filter((p) => p !== null).join(' ');
  const why = [event.reason, event.detail].filter((p) => p !== null && p !== '').join(': ');
  return slackEscape(`[drover ${event.shard}] ${event.type}${where ? ` ${where}` : ''}${why ? ` (${why})` : ''}${event.drainDeadline ? `, deadline ${event.drainDeadline}` : ''}`);
}
