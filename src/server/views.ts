/**
 * JSON shapes of the admin API: plain objects, times as ISO-8601 strings or null.
 *
 * Each shape is a zod schema (registered with an `id`, the name it has in the OpenAPI document,
 * openapi.ts) and its TypeScript type is derived from it (`z.infer`), or, where the type is
 * derived from the reconciler's own types (`Jsonified<...>`), checked equal to the schema's at
 * compile time (`VIEW_TYPES_MATCH` below): a field added on one side and not the other does not
 * compile. The dashboard (web/src/types.ts) and the CLI import these types.
 */
import { z } from 'zod';
import type { TenantSleep } from '../state/index.js';
import { LAUNCH_HOOK_RESULTS } from '../config/index.js';
import { NOTIFICATION_EVENT_TYPES } from '../config/notification-events.js';
import type { EndpointStatus, NotificationEvent } from '../notifications/index.js';
import { INSTANCE_STATUSES, LAUNCH_HOOK_STATES, OUTBOX_STATES, type AuditAction, type AuditEntry, type InstanceRecord } from '../store/index.js';
import { CANCEL_REASONS, CREATE_REASONS, DELETE_REASONS, DRAIN_REASONS, FORGET_REASONS } from '../store/reasons.js';
import type { GroupSummary, Plan, PlanAction, SizeDecision } from '../reconciler/index.js';

/** True when A and B are each assignable to the other (a compile-time drift check). */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** A time as the API writes it (`Date.toISOString()`). */
export const isoTime = z.iso.datetime().meta({ id: 'Time', description: 'An ISO-8601 time in UTC, e.g. "2026-11-29T18:00:00.000Z".' });
const isoOrNull = isoTime.nullable();
const int = z.number().int();
const count = z.number().int().min(0);

export const instanceViewSchema = z
  .strictObject({
    id: z.string(),
    tenant: z.string(),
    group: z.string(),
    status: z.enum(INSTANCE_STATUSES),
    providerId: z.string().nullable(),
    createdAt: isoTime,
    healthAt: isoOrNull,
    drainStartedAt: isoOrNull,
    drainDeadline: isoOrNull,
    drainReason: z.enum(DRAIN_REASONS).nullable(),
    drainAckedAt: isoOrNull,
    unhealthyAt: isoOrNull,
    noticeDeadline: isoOrNull,
    providerStatus: z.string().nullable().meta({ description: "What the provider last said of it (its own status words, or notFound)." }),
    templateHash: z.string(),
    createReason: z.enum(CREATE_REASONS),
    replaces: z.string().nullable(),
    deletedAt: isoOrNull,
    deleteReason: z.enum(DELETE_REASONS).nullable(),
    lastError: z.string().nullable(),
    connected: z.boolean().meta({ description: "Its agent is connected to this server now." }),
    protectedUntil: isoOrNull.meta({ description: 'Protected from voluntary disruption until then, or null.' }),
    launchHook: z
      .enum(LAUNCH_HOOK_STATES)
      .nullable()
      .meta({ description: 'Its launch hook: null (its group had none when it was created), `pending` (not in service until completed), `continued`, or `abandoned` (being replaced).' }),
    launchHookAt: isoOrNull.meta({ description: 'When its launch hook was completed, or null.' }),
  })
  .meta({ id: 'InstanceView', description: 'An instance: `GET /v1/instances`, `GET /v1/instances/{id}`.' });
export type InstanceView = z.infer<typeof instanceViewSchema>;

const scheduleFireSchema = z.strictObject({ index: int, name: z.string(), cron: z.string(), timezone: z.string(), size: count, at: isoTime });

export const sizingViewSchema = z
  .strictObject({
    size: count,
    source: z.enum(['config', 'schedule', 'operator', 'autoscale']),
    requested: int,
    since: isoTime,
    by: z.string().nullable(),
    min: count,
    max: count,
    floor: count,
    awakeSize: count,
    schedule: scheduleFireSchema.nullable(),
    nextSchedule: scheduleFireSchema.nullable(),
    sleeping: z.strictObject({ since: isoTime, until: isoOrNull, by: z.string() }).nullable(),
    autoscale: z
      .strictObject({
        blocked: z.strictObject({ message: z.string(), since: isoTime }).nullable(),
        lastDecision: z.string().nullable(),
        lastValue: z.number().nullable(),
        lastAt: isoOrNull,
      })
      .nullable(),
    reason: z.string(),
    wakeAt: isoOrNull,
  })
  .meta({
    id: 'SizingView',
    description:
      'What sets a group\'s size: `source` asked for `requested` at `since`; `size` is that within `floor`..`max`, or 0 while the tenant is asleep (`awakeSize`: the size awake). `schedule`: the latest schedule that has fired, `nextSchedule`: the next to fire. `reason`: one sentence saying all that.',
  });

/**
 * What sets a group's size: `source` (config, schedule, operator, autoscale) asked for
 * `requested` at `since`; `size` is that within `floor`..`max`, or 0 while the tenant is asleep
 * (`awakeSize`: the size awake). `schedule`: the latest schedule that has fired, `nextSchedule`:
 * the next to fire. `reason`: one sentence saying all that.
 */
export type SizingView = Jsonified<SizeDecision>;

export const blockViewSchema = z
  .strictObject({
    code: z.string().meta({ description: 'Why the group cannot act now: NotLeader, SurgeCap, RateLimited, WaitingForHealthy, DrainInProgress, ProviderErrors, BudgetExhausted, ShortCircuit, Protected, RotationHeld, RemovalPending, HealthSettling, AutoscaleBlocked, LaunchHookPending.' }),
    message: z.string(),
    instanceId: z.string().nullable(),
    instanceIds: z.array(z.string()).optional(),
    since: isoOrNull,
    until: isoOrNull,
  })
  .meta({ id: 'BlockView', description: 'A reason a group cannot do what it would.' });

export const groupViewSchema = z
  .strictObject({
    tenant: z.string(),
    group: z.string(),
    configured: z.boolean(),
    size: count,
    configuredSize: count.nullable(),
    sizeOverride: count.nullable(),
    inService: count,
    pending: count,
    launchHookPending: count.meta({ description: 'Of `pending`: running instances waiting for their launch hook.' }),
    draining: count,
    unhealthy: count,
    live: count,
    maxLive: count,
    template: z.string().nullable(),
    templateHash: z.string().nullable(),
    blocked: z.array(blockViewSchema),
    sizing: sizingViewSchema.nullable().meta({ description: 'What sets the size and why (see src/reconciler/sizing.ts); null for a group no longer configured.' }),
  })
  .meta({ id: 'GroupView', description: 'A group: `GET /v1/groups`, `GET /v1/groups/{tenant}/{group}`.' });
export type GroupView = z.infer<typeof groupViewSchema>;

export const fleetViewSchema = z
  .strictObject({
    tenants: count.meta({ description: 'Tenants with a configured group or a live instance.' }),
    groups: count.meta({ description: 'Groups: configured, or with live instances.' }),
    configuredGroups: count,
    instances: count.meta({ description: 'Live instances (not deleted).' }),
    byStatus: z.strictObject({ creating: count, running: count, draining: count, deleting: count }).meta({ description: 'Live instances by their recorded status.' }),
  })
  .meta({ id: 'FleetView', description: "`GET /v1/fleet`: the fleet's totals over the tenants the caller may see, counted in SQL." });
export type FleetView = z.infer<typeof fleetViewSchema>;

export const tenantViewSchema = z
  .strictObject({
    tenant: z.string(),
    groups: z.array(z.string()),
    asleep: z.boolean(),
    sleep: z.strictObject({ since: z.string(), until: z.string().nullable(), by: z.string() }).nullable().meta({ description: 'While asleep: since when, until when (null: until woken) and who put it to sleep.' }),
  })
  .meta({ id: 'TenantView', description: '`GET /v1/tenants` and the answer to sleep and wake: a tenant\'s groups and its sleep.' });
/** `GET /v1/tenants` and the answer to sleep and wake: a tenant's groups and its sleep. */
export type TenantView = z.infer<typeof tenantViewSchema>;

const reasonBudgetSchema = z.strictObject({ allowed: count.nullable(), used: count, limitedBy: z.string().nullable(), until: isoOrNull });

export const groupSummarySchema = z
  .strictObject({
    size: count,
    live: count,
    inService: count,
    pending: count,
    launchHookPending: count,
    draining: count,
    unhealthy: count,
    maxLive: count,
    disruption: z.strictObject({
      // One field per voluntary reason (the compile-time check below ties them to VOLUNTARY_REASONS).
      budgets: z.strictObject({ scaleDown: reasonBudgetSchema, expiry: reasonBudgetSchema, drift: reasonBudgetSchema, operator: reasonBudgetSchema }),
      shortCircuited: z.boolean(),
      maxUnhealthy: count.nullable(),
      brakeCount: count,
    }),
  })
  .meta({ id: 'GroupSummary' });

const priority = z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]).meta({ description: '0 urgent, 1 high, 2 normal, 3 bulk.' });

export const planActionSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('create'), reason: z.enum(CREATE_REASONS), replaces: z.string().nullable(), priority, message: z.string() }),
    z.strictObject({ kind: z.literal('dispatchCreate'), instanceId: z.string(), priority, message: z.string() }),
    z.strictObject({ kind: z.literal('cancelCreate'), instanceId: z.string(), reason: z.enum(CANCEL_REASONS), message: z.string() }),
    z.strictObject({ kind: z.literal('drain'), instanceId: z.string(), reason: z.enum(DRAIN_REASONS), deadline: isoTime, unhealthyAt: isoOrNull, message: z.string() }),
    z.strictObject({ kind: z.literal('delete'), instanceId: z.string(), reason: z.enum(DELETE_REASONS), priority, message: z.string() }),
    z.strictObject({ kind: z.literal('dispatchDelete'), instanceId: z.string(), message: z.string() }),
    z.strictObject({ kind: z.literal('forget'), instanceId: z.string(), reason: z.enum(FORGET_REASONS), message: z.string() }),
    z.strictObject({ kind: z.literal('check'), instanceId: z.string(), cause: z.string(), message: z.string() }),
    z.strictObject({ kind: z.literal('launchHook'), instanceId: z.string(), result: z.enum(LAUNCH_HOOK_RESULTS), cause: z.enum(['timeout', 'unconfigured']), message: z.string() }),
  ])
  .meta({ id: 'PlanAction', description: 'One step of a dry-run plan.' });

export const planViewSchema = z
  .strictObject({
    tenant: z.string(),
    group: z.string(),
    configured: z.boolean(),
    summary: groupSummarySchema,
    wakeAt: isoOrNull,
    actions: z.array(planActionSchema),
    blocked: z.array(blockViewSchema),
  })
  .meta({ id: 'PlanView', description: '`GET /v1/groups/{tenant}/{group}/plan`: the dry-run plan.' });

/** Every audit action (checked against the store's `AuditAction` below). */
export const AUDIT_ACTIONS = [
  'create',
  'created',
  'createFailed',
  'cancel',
  'adopt',
  'drain',
  'drainAcked',
  'ackIgnored',
  'notice',
  'unhealthy',
  'delete',
  'deleted',
  'deleteFailed',
  'vanished',
  'leak',
  'scale',
  'drainRequested',
  'drainExtended',
  'drainCancelled',
  'drainForced',
  'protect',
  'unprotect',
  'removalPending',
  'removalCancelled',
  'brakeTripped',
  'brakeReleased',
  'agentBootstrap',
  'agentBootstrapRefused',
  'sleep',
  'wake',
  'autoscaleBlocked',
  'autoscaleResumed',
  'launchHookContinued',
  'launchHookAbandoned',
  'launchHookTimedOut',
] as const satisfies readonly AuditAction[];

export const auditViewSchema = z
  .strictObject({
    seq: int,
    at: isoTime,
    tenant: z.string(),
    group: z.string(),
    instanceId: z.string().nullable(),
    action: z.enum(AUDIT_ACTIONS),
    reason: z.string(),
    event: z.string().nullable(),
    actor: z.string(),
    detail: z.string().nullable(),
    epoch: int.nullable(),
  })
  .meta({ id: 'AuditView', description: 'An audit entry, as `GET /v1/audit` and the `audit` event carry it.' });

/** The compile-time proof that each schema says what its TypeScript type says (false does not compile). */
export const VIEW_TYPES_MATCH: {
  sizing: Same<z.infer<typeof sizingViewSchema>, SizingView>;
  plan: Same<z.infer<typeof planViewSchema>, PlanView>;
  audit: Same<z.infer<typeof auditViewSchema>, AuditView>;
  auditActions: Same<(typeof AUDIT_ACTIONS)[number], AuditAction>;
} = { sizing: true, plan: true, audit: true, auditActions: true };

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);


export function instanceView(r: InstanceRecord, connected: boolean, protectedUntil: Date | null = null): InstanceView {
  return {
    id: r.id,
    tenant: r.tenant,
    group: r.group,
    status: r.status,
    providerId: r.providerId,
    createdAt: r.createdAt.toISOString(),
    healthAt: iso(r.healthAt),
    drainStartedAt: iso(r.drainStartedAt),
    drainDeadline: iso(r.drainDeadline),
    drainReason: r.drainReason,
    drainAckedAt: iso(r.drainAckedAt),
    unhealthyAt: iso(r.unhealthyAt),
    noticeDeadline: iso(r.noticeDeadline),
    providerStatus: r.providerStatus,
    templateHash: r.templateHash,
    createReason: r.createReason,
    replaces: r.replaces,
    deletedAt: iso(r.deletedAt),
    deleteReason: r.deleteReason,
    lastError: r.lastError,
    connected,
    protectedUntil: iso(protectedUntil),
    launchHook: r.launchHook,
    launchHookAt: iso(r.launchHookAt),
  };
}

export function sizingView(d: SizeDecision): SizingView {
  return jsonified(d);
}

function blockViews(plan: Plan): GroupView['blocked'] {
  return plan.blocked.map((b) => ({ code: b.code, message: b.message, instanceId: b.instanceId ?? null, ...(b.instanceIds ? { instanceIds: b.instanceIds } : {}), since: iso(b.since ?? null), until: iso(b.until ?? null) }));
}

export function groupView(
  plan: Plan,
  extra: { configuredSize: number | null; sizeOverride: number | null; template: string | null; templateHash: string | null },
): GroupView {
  return {
    tenant: plan.tenant,
    group: plan.group,
    configured: plan.configured,
    size: plan.summary.size,
    configuredSize: extra.configuredSize,
    sizeOverride: extra.sizeOverride,
    inService: plan.summary.inService,
    pending: plan.summary.pending,
    launchHookPending: plan.summary.launchHookPending,
    draining: plan.summary.draining,
    unhealthy: plan.summary.unhealthy,
    live: plan.summary.live,
    maxLive: plan.summary.maxLive,
    template: extra.template,
    templateHash: extra.templateHash,
    blocked: blockViews(plan),
    sizing: plan.sizing ? sizingView(plan.sizing) : null,
  };
}



export function tenantView(tenant: string, groups: string[], sleep: TenantSleep | null): TenantView {
  return { tenant, groups, asleep: sleep !== null, sleep: sleep ? { since: sleep.at, until: sleep.until, by: sleep.by } : null };
}

/** What JSON makes of `T`: its dates become ISO-8601 strings. */
export type Jsonified<T> = T extends Date ? string : T extends ReadonlyArray<infer U> ? Jsonified<U>[] : T extends object ? { [K in keyof T]: Jsonified<T[K]> } : T;

/** `GET /v1/groups/{tenant}/{group}/plan`: the dry-run plan. */
export interface PlanView {
  tenant: string;
  group: string;
  configured: boolean;
  summary: Jsonified<GroupSummary>;
  wakeAt: string | null;
  actions: Array<Jsonified<PlanAction>>;
  blocked: GroupView['blocked'];
}

export function planView(plan: Plan): PlanView {
  return {
    tenant: plan.tenant,
    group: plan.group,
    configured: plan.configured,
    summary: jsonified(plan.summary),
    wakeAt: iso(plan.wakeAt),
    actions: plan.actions.map(jsonified),
    blocked: blockViews(plan),
  };
}

/** A plain value as JSON will carry it (dates as ISO strings), typed so. */
function jsonified<T>(value: T): Jsonified<T> {
  return JSON.parse(JSON.stringify(value)) as Jsonified<T>;
}

/** An audit entry, as `GET /v1/audit` and the `audit` event carry it. */
export type AuditView = Jsonified<AuditEntry>;

export function auditView(a: AuditEntry): AuditView {
  return {
    seq: a.seq,
    at: a.at.toISOString(),
    tenant: a.tenant,
    group: a.group,
    instanceId: a.instanceId,
    action: a.action,
    reason: a.reason,
    event: a.event,
    actor: a.actor,
    detail: a.detail,
    epoch: a.epoch,
  };
}

const eventSchema = z
  .strictObject({
    id: z.string().meta({ description: 'Unique per event, the same on every retry and for every endpoint: dedupe by it.' }),
    type: z.enum(NOTIFICATION_EVENT_TYPES),
    at: z.string().meta({ description: 'When the fact happened (ISO 8601).' }),
    shard: z.string(),
    tenant: z.string().nullable(),
    group: z.string().nullable(),
    instanceId: z.string().nullable(),
    reason: z.string().nullable().meta({ description: "Why (a drain's reason, a delete's reason, ...), as in the audit." }),
    detail: z.string().nullable().meta({ description: 'One sentence with the particulars, as in the audit.' }),
    actor: z.string().nullable(),
    auditSeq: int.nullable().meta({ description: 'The audit entry it comes from, when it comes from one.' }),
    drainDeadline: z.string().optional().meta({ description: "drainDeadlineNear: the drain's deadline (ISO 8601)." }),
    launchHook: z
      .strictObject({ result: z.enum(LAUNCH_HOOK_RESULTS), timedOut: z.boolean() })
      .optional()
      .meta({ description: 'launchHookCompleted: how the hook ended, and whether by its timeout (`onTimeout`).' }),
  })
  .meta({ id: 'NotificationEvent', description: 'A webhook event as it is delivered.' });

export const deliveryViewSchema = z
  .strictObject({
    id: int,
    eventId: z.string(),
    eventType: z.string(),
    endpoint: z.string(),
    tenant: z.string().nullable(),
    state: z.enum(OUTBOX_STATES),
    attempts: count,
    createdAt: isoTime,
    lastAttemptAt: isoOrNull,
    nextAttemptAt: isoOrNull.meta({ description: 'Pending: when the next attempt is due.' }),
    giveUpAt: isoOrNull.meta({ description: 'Pending: when it is given up if it keeps failing.' }),
    lastStatus: int.nullable(),
    lastError: z.string().nullable(),
    deliveredAt: isoOrNull,
    latencyMs: z.number().nullable().meta({ description: 'Delivered: from the event to its delivery.' }),
    event: eventSchema,
  })
  .meta({ id: 'DeliveryView', description: '`GET /v1/notifications/deliveries`: one event for one endpoint (its outbox row), its attempts and outcome.' });
export type DeliveryView = z.infer<typeof deliveryViewSchema>;

export const notificationEndpointViewSchema = z
  .strictObject({
    name: z.string(),
    url: z.string().meta({ description: "Its URL's origin only: the path and query may hold the receiver's secret (Slack's do), and this list is shown on screens." }),
    format: z.enum(['json', 'slack']),
    events: z.array(z.string()).nullable(),
    tenants: z.array(z.string()).nullable(),
    inFlight: count,
    breaker: z.enum(['closed', 'open', 'halfOpen']),
    breakerOpenUntil: isoOrNull.meta({ description: 'While the breaker is open: when it lets a probe through.' }),
    pending: count.meta({ description: 'Deliveries waiting (first attempt or retry).' }),
    dead: count.meta({ description: 'Deliveries given up after `retryFor` (dead letters), redeliverable.' }),
    oldestPendingAt: isoOrNull.meta({ description: 'When the oldest pending delivery was created, or null.' }),
  })
  .meta({ id: 'NotificationEndpointView', description: '`GET /v1/notifications`: a webhook endpoint, its breaker and its queue.' });
export type NotificationEndpointView = z.infer<typeof notificationEndpointViewSchema>;

export const testEventViewSchema = z.strictObject({ endpoint: z.string(), eventId: z.string() }).meta({ id: 'NotificationTestResult', description: 'What `POST /v1/notifications/{name}/test` answers.' });
export type TestEventView = z.infer<typeof testEventViewSchema>;

export const redeliveryViewSchema = z
  .strictObject({ id: int, eventId: z.string(), endpoint: z.string(), state: z.literal('pending') })
  .meta({ id: 'RedeliverResult', description: 'What `POST /v1/notifications/deliveries/{id}/redeliver` answers.' });
export type RedeliveryView = z.infer<typeof redeliveryViewSchema>;

export const bulkRedeliveryViewSchema = z
  .strictObject({ endpoint: z.string(), redelivered: count.meta({ description: 'Dead letters moved back to pending.' }), at: isoTime })
  .meta({ id: 'BulkRedeliverResult', description: 'What `POST /v1/notifications/{name}/redeliver` answers.' });
export type BulkRedeliveryView = z.infer<typeof bulkRedeliveryViewSchema>;

/** The compile-time proof that the schemas say what the notifier's types say. */
export const NOTIFICATION_TYPES_MATCH: {
  event: Same<z.infer<typeof eventSchema>, NotificationEvent>;
  endpoint: Same<Omit<NotificationEndpointView, 'pending' | 'dead' | 'oldestPendingAt'>, EndpointStatus>;
} = { event: true, endpoint: true };
