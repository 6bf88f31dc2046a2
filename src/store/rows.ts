/**
 * How instance and audit records map to SQLite rows: column names, dates as epoch milliseconds,
 * rows read as arrays (faster for the full reads a reconcile makes), SQL conditions for the
 * filters set, and the opaque paging cursor of an instance.
 */
import { CREATE_REASONS, DELETE_REASONS, DRAIN_REASONS, storedReason } from './reasons.js';
import { LAUNCH_HOOK_STATES, type AuditEntry, type InstanceRecord, type InstanceStatus, type ObservedStatus } from './types.js';

export type Row = Record<string, unknown>;

/** Columns of `instances`, keyed by the record field they hold. */
export const COLUMNS = {
  id: 'id',
  tenant: 'tenant',
  group: 'grp',
  providerId: 'provider_id',
  status: 'status',
  templateName: 'template_name',
  templateHash: 'template_hash',
  createReason: 'create_reason',
  replaces: 'replaces',
  createdAt: 'created_at',
  confirmedAt: 'confirmed_at',
  healthAt: 'health_at',
  firstHealthAt: 'first_health_at',
  unhealthyAt: 'unhealthy_at',
  providerStatus: 'provider_status',
  providerCheckedAt: 'provider_checked_at',
  drainStartedAt: 'drain_started_at',
  drainDeadline: 'drain_deadline',
  drainAckedAt: 'drain_acked_at',
  drainReason: 'drain_reason',
  noticeAt: 'notice_at',
  noticeDeadline: 'notice_deadline',
  attempts: 'attempts',
  nextAttemptAt: 'next_attempt_at',
  lastError: 'last_error',
  deletedAt: 'deleted_at',
  deleteReason: 'delete_reason',
  launchHook: 'launch_hook',
  launchHookAt: 'launch_hook_at',
} as const satisfies Record<keyof InstanceRecord, string>;

export const DATE_FIELDS = new Set<keyof InstanceRecord>([
  'createdAt',
  'confirmedAt',
  'healthAt',
  'firstHealthAt',
  'unhealthyAt',
  'providerCheckedAt',
  'drainStartedAt',
  'drainDeadline',
  'drainAckedAt',
  'noticeAt',
  'noticeDeadline',
  'nextAttemptAt',
  'deletedAt',
  'launchHookAt',
]);

export const FIELDS = Object.keys(COLUMNS) as Array<keyof InstanceRecord>;
/**
 * An instance's health time: its live row in instance_health when it has one (migration 8),
 * else the instances column (an instance that has not reported, or a deleted one).
 */
const HEALTH_AT = 'COALESCE(instance_health.at, instances.health_at)';
export const SELECT_INSTANCE = `SELECT ${FIELDS.map((f) => (f === 'healthAt' ? HEALTH_AT : COLUMNS[f])).join(', ')} FROM instances LEFT JOIN instance_health ON instance_health.instance_id = instances.id`;
/**
 * Position of each field in SELECT_INSTANCE's columns. Instance rows are read as arrays: with
 * 26 columns, better-sqlite3 builds an array about three times faster than an object, which
 * matters when a full reconcile reads every row (bench B3).
 */
export const AT = Object.fromEntries(FIELDS.map((f, i) => [f, i])) as Record<keyof InstanceRecord, number>;

export function toDate(value: unknown): Date | null {
  return typeof value === 'number' ? new Date(value) : null;
}

export function rowToInstance(row: unknown[]): InstanceRecord {
  return {
    id: row[AT.id] as string,
    tenant: row[AT.tenant] as string,
    group: row[AT.group] as string,
    providerId: (row[AT.providerId] as string | null) ?? null,
    status: row[AT.status] as InstanceStatus,
    templateName: row[AT.templateName] as string,
    templateHash: row[AT.templateHash] as string,
    createReason: storedReason(CREATE_REASONS, row[AT.createReason], 'create_reason'),
    replaces: (row[AT.replaces] as string | null) ?? null,
    createdAt: new Date(row[AT.createdAt] as number),
    confirmedAt: toDate(row[AT.confirmedAt]),
    healthAt: toDate(row[AT.healthAt]),
    firstHealthAt: toDate(row[AT.firstHealthAt]),
    unhealthyAt: toDate(row[AT.unhealthyAt]),
    providerStatus: (row[AT.providerStatus] as ObservedStatus | null) ?? null,
    providerCheckedAt: toDate(row[AT.providerCheckedAt]),
    drainStartedAt: toDate(row[AT.drainStartedAt]),
    drainDeadline: toDate(row[AT.drainDeadline]),
    drainAckedAt: toDate(row[AT.drainAckedAt]),
    drainReason: row[AT.drainReason] === null ? null : storedReason(DRAIN_REASONS, row[AT.drainReason], 'drain_reason'),
    noticeAt: toDate(row[AT.noticeAt]),
    noticeDeadline: toDate(row[AT.noticeDeadline]),
    attempts: (row[AT.attempts] as number | null) ?? 0,
    nextAttemptAt: toDate(row[AT.nextAttemptAt]),
    lastError: (row[AT.lastError] as string | null) ?? null,
    deletedAt: toDate(row[AT.deletedAt]),
    deleteReason: row[AT.deleteReason] === null ? null : storedReason(DELETE_REASONS, row[AT.deleteReason], 'delete_reason'),
    launchHook: row[AT.launchHook] === null || row[AT.launchHook] === undefined ? null : storedReason(LAUNCH_HOOK_STATES, row[AT.launchHook], 'launch_hook'),
    launchHookAt: toDate(row[AT.launchHookAt]),
  };
}

export function toColumnValue(field: keyof InstanceRecord, value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (DATE_FIELDS.has(field)) return (value as Date).getTime();
  return value;
}

/** SQL conditions for the filters that are set (undefined ones are left out). */
export function conditions(filters: ReadonlyArray<[clause: string, value: unknown]>): { where: string[]; params: unknown[] } {
  const set = filters.filter(([, value]) => value !== undefined);
  return { where: set.map(([clause]) => clause), params: set.map(([, value]) => value) };
}

export function rowToAudit(row: Row): AuditEntry {
  return {
    seq: row.seq as number,
    at: new Date(row.at as number),
    tenant: row.tenant as string,
    group: row.grp as string,
    instanceId: (row.instance_id as string | null) ?? null,
    action: row.action as AuditEntry['action'],
    reason: row.reason as string,
    event: (row.event as string | null) ?? null,
    actor: row.actor as string,
    detail: (row.detail as string | null) ?? null,
    epoch: (row.epoch as number | null) ?? null,
  };
}

/** The paging cursor of an instance record (see `listInstances`): opaque to clients. */
export function instanceCursor(record: Pick<InstanceRecord, 'tenant' | 'group' | 'createdAt' | 'id'>): string {
  return Buffer.from(JSON.stringify([record.tenant, record.group, record.createdAt.getTime(), record.id])).toString('base64url');
}

export function parseInstanceCursor(text: string): { tenant: string; group: string; createdAt: number; id: string } | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 4 && typeof value[0] === 'string' && typeof value[1] === 'string' && Number.isSafeInteger(value[2]) && typeof value[3] === 'string') {
      return { tenant: value[0], group: value[1], createdAt: value[2] as number, id: value[3] };
    }
  } catch {
    // Not base64url JSON: not ours.
  }
  return null;
}
