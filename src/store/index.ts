export { LocalDb, openLocalDb } from './local-db.js';
export { instanceCursor } from './rows.js';
export { OUTBOX_STATES, OutboxTable } from './outbox.js';
export type { DrainingInstance, NewOutboxRow, OutboxEndpointStats, OutboxFilter, OutboxRouter, OutboxRow, OutboxState } from './outbox.js';
export type { NewInstance } from './local-db.js';
export { INSTANCE_STATUSES, LAUNCH_HOOK_STATES } from './types.js';
export type {
  AuditAction,
  AuditEntry,
  AuditFilter,
  BootstrapTokenRecord,
  GroupState,
  InstanceFilter,
  InstancePatch,
  InstanceRecord,
  InstanceRef,
  InstanceStatus,
  LaunchHookState,
  NewAuditEntry,
  ObservedStatus,
  StoreChange,
  StoredTimer,
} from './types.js';
