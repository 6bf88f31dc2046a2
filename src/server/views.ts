/**
 * JSON shapes of the admin API: plain objects, times as ISO-8601 strings or null.
 */
import type { AuditEntry, InstanceRecord } from '../store/index.js';
import type { Plan } from '../reconciler/index.js';

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
  draining: number;
  unhealthy: number;
  live: number;
  maxLive: number;
  template: string | null;
  templateHash: string | null;
  blocked: Array<{ code: string; message: string; instanceId: string | null; since: string | null; until: string | null }>;
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
    draining: plan.summary.draining,
    unhealthy: plan.summary.unhealthy,
    live: plan.summary.live,
    maxLive: plan.summary.maxLive,
    template: extra.template,
    templateHash: extra.templateHash,
    blocked: plan.blocked.map((b) => ({ code: b.code, message: b.message, instanceId: b.instanceId ?? null, since: iso(b.since ?? null), until: iso(b.until ?? null) })),
  };
}

export function planView(plan: Plan): unknown {
  return {
    tenant: plan.tenant,
    group: plan.group,
    configured: plan.configured,
    summary: plan.summary,
    wakeAt: iso(plan.wakeAt),
    actions: plan.actions.map((a) => ({ ...a, ...('deadline' in a ? { deadline: a.deadline.toISOString() } : {}), ...('unhealthyAt' in a ? { unhealthyAt: iso(a.unhealthyAt) } : {}) })),
    blocked: plan.blocked.map((b) => ({ code: b.code, message: b.message, instanceId: b.instanceId ?? null, since: iso(b.since ?? null), until: iso(b.until ?? null) })),
  };
}

export function auditView(a: AuditEntry): unknown {
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
