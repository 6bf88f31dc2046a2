/**
 * What the reconciler needs from the outside world, as interfaces. LocalDb satisfies
 * ReconcilerStore; any Provider and InstanceManager will do.
 */
import type {
  AuditEntry,
  GroupState,
  InstanceFilter,
  InstancePatch,
  InstanceRecord,
  InstanceRef,
  InstanceStatus,
  NewAuditEntry,
  NewInstance,
  StoreChange,
  StoredTimer,
} from '../store/index.js';

export interface ReconcilerStore {
  transaction<T>(fn: () => T): T;
  subscribe(listener: (change: StoreChange) => void): () => void;
  insertInstance(record: NewInstance): InstanceRecord;
  getInstance(id: string): InstanceRecord | null;
  liveInstances(tenant: string, group: string): InstanceRecord[];
  departedInstances(tenant: string, group: string, since: Date): InstanceRecord[];
  /**
   * The oldest last health report among the group's running instances that the plan judges by
   * the age of their reports (reported at least once, no termination notice, not judged unhealthy
   * since), or null when there is none. May count more instances than the plan judges, never fewer.
   */
  earliestHealthAt(tenant: string, group: string): Date | null;
  listInstances(filter?: InstanceFilter): InstanceRecord[];
  /**
   * Every instance not deleted, only the fields provider sync needs (a narrow full read),
   * streamed: no other store call may be made until the iteration has ended.
   */
  liveInstanceRefs(): Iterable<InstanceRef>;
  groupsWithLiveInstances(): Array<{ tenant: string; group: string }>;
  /** The only writer of a status: a move its lifecycle allows, with its audit entry, in one transaction. */
  transition(id: string, to: InstanceStatus, patch: InstancePatch, audit: Omit<NewAuditEntry, 'instanceId'>): InstanceRecord;
  /** Changes fields other than the status. */
  updateInstance(id: string, patch: InstancePatch): InstanceRecord | null;
  appendAudit(entry: NewAuditEntry): AuditEntry;
  setTimer(key: string, dueAt: number, event: string): void;
  deleteTimer(key: string): void;
  listTimers(): StoredTimer[];
  getGroupState(tenant: string, group: string): GroupState | null;
  setCreateHold(tenant: string, group: string, hold: { key: string; reason: string; at: Date } | null): void;
  clearCreateHolds(): void;
  setRemovalSince(tenant: string, group: string, since: Date | null): void;
  setBrakeSince(tenant: string, group: string, since: Date | null): void;
}

export type { Logger } from '../logging/index.js';
