import type { ProviderStatus } from '../providers/index.js';
import type { CreateReason, DeleteReason, DrainReason } from './reasons.js';

/**
 * Drover's own lifecycle of an instance:
 * creating (recorded, provider not yet confirmed) → running → draining → deleting → deleted.
 * An instance may skip steps (running → deleting when it is already dead; creating → deleted
 * when its create is cancelled or fails for good).
 */
export type InstanceStatus = 'creating' | 'running' | 'draining' | 'deleting' | 'deleted';
export const INSTANCE_STATUSES: readonly InstanceStatus[] = ['creating', 'running', 'draining', 'deleting', 'deleted'];

/** What the provider was last seen to say about an instance (`notFound`: it no longer exists). */
export type ObservedStatus = ProviderStatus | 'notFound';

export interface InstanceRecord {
  id: string;
  tenant: string;
  group: string;
  providerId: string | null;
  status: InstanceStatus;
  templateName: string;
  templateHash: string;
  /** Why it was created: scaleUp, replacement reasons, expiry, drift, adopted. */
  createReason: CreateReason;
  /** The instance this one was created to replace (rotation), if any. */
  replaces: string | null;
  /** When the create was recorded (before the provider was called). */
  createdAt: Date;
  /** When the provider confirmed the create. */
  confirmedAt: Date | null;
  /** Last health report from the instance's agent. */
  healthAt: Date | null;
  /** Its first health report (from pending to in service). */
  firstHealthAt: Date | null;
  /** When the instance was judged unhealthy. */
  unhealthyAt: Date | null;
  providerStatus: ObservedStatus | null;
  providerCheckedAt: Date | null;
  drainStartedAt: Date | null;
  drainDeadline: Date | null;
  drainAckedAt: Date | null;
  drainReason: DrainReason | null;
  /** When a termination notice arrived, and when the provider will terminate the instance. */
  noticeAt: Date | null;
  noticeDeadline: Date | null;
  /** Provider calls (create or delete) attempted for the current step, and when to try again. */
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  deletedAt: Date | null;
  deleteReason: DeleteReason | null;
  /**
   * Its launch hook (the group's `hooks.launch`): null when the group had none when it was
   * created (or it was adopted); `pending` until completed — not in service meanwhile — then
   * `continued` (in service once healthy) or `abandoned` (replaced).
   */
  launchHook: LaunchHookState | null;
  /** When its launch hook was completed (continue, abandon or timeout). */
  launchHookAt: Date | null;
}

/** A launch hook's state on an instance (see `InstanceRecord.launchHook`). */
export type LaunchHookState = 'pending' | 'continued' | 'abandoned';
export const LAUNCH_HOOK_STATES: readonly LaunchHookState[] = ['pending', 'continued', 'abandoned'];

export interface InstanceFilter {
  tenant?: string;
  group?: string;
  /** Only instances of these tenants (a scoped API token's). */
  tenants?: readonly string[];
  /** Only instances in this status. */
  status?: InstanceStatus;
  includeDeleted?: boolean;
  /** At most this many (paging). */
  limit?: number;
  /** Only instances after this cursor (`nextCursor` of the previous page), in list order. */
  after?: string;
}

/** What provider sync needs of an instance: a narrow read, for passes over every row. */
export type InstanceRef = Pick<InstanceRecord, 'id' | 'tenant' | 'group' | 'providerId' | 'status' | 'providerStatus'>;

/** Fields that can be changed after insert (the status only through `transition`). */
export type InstancePatch = Partial<Omit<InstanceRecord, 'id' | 'tenant' | 'group' | 'status'>>;

export type AuditAction =
  | 'create'
  | 'created'
  | 'createFailed'
  | 'cancel'
  | 'adopt'
  | 'drain'
  | 'drainAcked'
  | 'ackIgnored'
  | 'notice'
  | 'unhealthy'
  | 'delete'
  | 'deleted'
  | 'deleteFailed'
  | 'vanished'
  | 'leak'
  | 'scale'
  | 'drainRequested'
  | 'drainExtended'
  | 'drainCancelled'
  | 'drainForced'
  | 'protect'
  | 'unprotect'
  | 'removalPending'
  | 'removalCancelled'
  | 'brakeTripped'
  | 'brakeReleased'
  /** An instance's agent exchanged its bootstrap token for its credential. */
  | 'agentBootstrap'
  /** A real bootstrap token was refused (used already, or presented from another machine): audited once per token. */
  | 'agentBootstrapRefused'
  /** A tenant put to sleep (its groups' size 0) and woken (by an operator, or its `until`). */
  | 'sleep'
  | 'wake'
  /** Autoscale could not act (its query failed or gave no number), and could again. */
  | 'autoscaleBlocked'
  | 'autoscaleResumed'
  /** A launch hook completed with continue (reason `continue`) or abandon (reason `abandon`) by an operator or the instance. */
  | 'launchHookContinued'
  | 'launchHookAbandoned'
  /** A launch hook nobody completed in time: the reason is what its `onTimeout` made of it. */
  | 'launchHookTimedOut';

export interface AuditEntry {
  seq: number;
  at: Date;
  tenant: string;
  group: string;
  instanceId: string | null;
  action: AuditAction;
  reason: string;
  /** The event that led to it, e.g. "TerminationNotice" or "GroupChanged(config)". */
  event: string | null;
  /** Who asked: "reconciler" or an operator's name. */
  actor: string;
  detail: string | null;
  /** Leadership epoch under which it was done, when known. */
  epoch: number | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'seq' | 'at' | 'actor' | 'detail' | 'epoch' | 'event'> & {
  at: Date;
  actor?: string;
  detail?: string | null;
  epoch?: number | null;
  event?: string | null;
};

export interface AuditFilter {
  instanceId?: string;
  tenant?: string;
  group?: string;
  /** Only entries of these tenants (a scoped API token's). */
  tenants?: readonly string[];
  /** Only entries after this sequence number: the oldest `limit` of them (paging forward). */
  afterSeq?: number;
  /** Only entries before this sequence number: the newest `limit` of them (paging back). */
  beforeSeq?: number;
  /** At most this many, oldest first (default 1000). Without `afterSeq`, the newest ones. */
  limit?: number;
}

export interface StoredTimer {
  key: string;
  dueAt: number;
  event: string;
}

export interface GroupState {
  tenant: string;
  group: string;
  holdKey: string | null;
  holdReason: string | null;
  holdAt: Date | null;
  /** When the group was first seen gone from the config (its removal waits groupRemovalGrace). */
  removalSince: Date | null;
  /** Since when its health brake (maxUnhealthy) holds, while it does. */
  brakeSince: Date | null;
}

/**
 * A one-time bootstrap token as stored: its SHA-256 (hex), never the token itself. Every token
 * issued for an instance is good until it expires or one of the instance's tokens is used.
 */
export interface BootstrapTokenRecord {
  tokenHash: string;
  instanceId: string;
  issuedAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
  /** Presentations refused since it could no longer be used (used, or from the wrong machine). */
  refusals: number;
}

/** Notifications from the store, for the reconciler and the server's event stream. */
export type StoreChange =
  | { kind: 'firstHealth'; instanceId: string; tenant: string; group: string; at: Date }
  | { kind: 'audit'; entry: AuditEntry };
