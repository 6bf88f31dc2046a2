/**
 * JSON shapes of the admin API: plain objects, times as ISO-8601 strings or null.
 */
import type { EndpointStatus, NotificationEvent } from '../notifications/index.js';
import type { TenantSleep } from '../state/index.js';
import type { AuditEntry, InstanceRecord, LaunchHookState, OutboxState } from '../store/index.js';
import type { GroupSummary, Plan, PlanAction, SizeDecision } from '../reconciler/index.js';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export interface InstanceView {
  id: string;
  tenant: string;
  group: string;
  status: string;
  providerId: string | null;
  createdAt: string;
  healthAt: string | null;
  drainStartedAt: string | null;
  drainDeadline: string | null;
  drainReason: string | null;
  drainAckedAt: string | null;
  unhealthyAt: string | null;
  noticeDeadline: string | null;
  providerStatus: string | null;
  templateHash: string;
  createReason: string;
  replaces: string | null;
  deletedAt: string | null;
  deleteReason: string | null;
  lastError: string | null;
  connected: boolean;
  /** Protected from voluntary disruption until then, or null. */
  protectedUntil: string | null;
  /**
   * Its launch hook: null (its group had none when it was created), `pending` (not in service
   * until completed), `continued` or `abandoned` (being replaced).
   */
  launchHook: LaunchHookState | null;
  /** When its launch hook was completed, or null. */
  launchHookAt: string | null;
}

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

export interface GroupView {
  tenant: string;
  group: string;
  configured: boolean;
  size: number;
  configuredSize: number | null;
  sizeOverride: number | null;
  inService: number;
  pending: number;
  /** Of `pending`: running instances waiting for their launch hook. */
  launchHookPending: number;
  draining: number;
  unhealthy: number;
  live: number;
  maxLive: number;
  template: string | null;
  templateHash: string | null;
  blocked: Array<{ code: string; message: string; instanceId: string | null; instanceIds?: string[]; since: string | null; until: string | null }>;
  /** What sets the size and why (see src/reconciler/sizing.ts); null for a group no longer configured. */
  sizing: SizingView | null;
}

/**
 * What sets a group's size: `source` (config, schedule, operator, autoscale) asked for
 * `requested` at `since`; `size` is that within `floor`..`max`, or 0 while the tenant is asleep
 * (`awakeSize`: the size awake). `schedule`: the latest schedule that has fired, `nextSchedule`:
 * the next to fire. `reason`: one sentence saying all that.
 */
export type SizingView = Jsonified<SizeDecision>;

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


/** `GET /v1/tenants` and the answer to sleep and wake: a tenant's groups and its sleep. */
export interface TenantView {
  tenant: string;
  groups: string[];
  asleep: boolean;
  /** While asleep: since when, until when (null: until woken) and who put it to sleep. */
  sleep: { since: string; until: string | null; by: string } | null;
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

/**
 * `GET /v1/notifications`: a webhook endpoint, its queue and its breaker. `url` is the origin
 * only ("https://hooks.example/…" when it has a path or query): a receiver's secret can live in
 * its path (Slack's does), and this list is shown on screens.
 */
export interface NotificationEndpointView extends EndpointStatus {
  /** Its URL's origin only (the path and query may hold the receiver's secret). */
  url: string;
  /** Deliveries waiting (first attempt or retry). */
  pending: number;
  /** Deliveries given up after `retryFor` (dead letters), redeliverable. */
  dead: number;
  /** When the oldest pending delivery was created, or null. */
  oldestPendingAt: string | null;
}

/** `GET /v1/notifications/deliveries`: one event for one endpoint, its attempts and outcome. */
export interface DeliveryView {
  id: number;
  eventId: string;
  eventType: string;
  endpoint: string;
  tenant: string | null;
  state: OutboxState;
  attempts: number;
  createdAt: string;
  lastAttemptAt: string | null;
  /** Pending: when the next attempt is due. */
  nextAttemptAt: string | null;
  /** Pending: when it is given up if it keeps failing. */
  giveUpAt: string | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  /** Delivered: from the event to its delivery. */
  latencyMs: number | null;
  event: NotificationEvent;
}

/** What `POST /v1/notifications/:name/test` answers. */
export interface TestEventView {
  endpoint: string;
  eventId: string;
}

/** What `POST /v1/notifications/deliveries/:id/redeliver` answers. */
export interface RedeliveryView {
  id: number;
  eventId: string;
  endpoint: string;
  state: 'pending';
}

/** What `POST /v1/notifications/:name/redeliver` answers. */
export interface BulkRedeliveryView {
  endpoint: string;
  /** Dead letters moved back to pending. */
  redelivered: number;
  at: string;
}
