/**
 * An instance's lifecycle: the moves its status may make, and the audit actions that record each.
 * `LocalDb.transition` is the only writer of a status and refuses any other move; the simulator's
 * lifecycle check reads the same table (it is a declaration, like the vocabulary of reasons).
 *
 * creating (recorded, provider not yet confirmed) → running → draining → deleting → deleted, with
 * the short cuts the README names: a dead instance is deleted without a drain, a create cancelled
 * or failed for good goes straight to deleting (or deleted), a cancelled drain returns to running,
 * and a deleted instance found at the provider again (a leak, a create that landed late) is
 * deleted again.
 */
import { DroverError } from '../errors/index.js';
import type { AuditAction, InstanceStatus } from './types.js';

/** The statuses an instance may be recorded with (a create, or one adopted from the provider). */
export const INITIAL_STATUSES: readonly InstanceStatus[] = ['creating', 'running', 'draining'];

/** From each status, the statuses it may move to, each with the audit actions that record the move. */
export const STATUS_MOVES: Readonly<Record<InstanceStatus, Readonly<Partial<Record<InstanceStatus, readonly AuditAction[]>>>>> = {
  creating: { running: ['created', 'adopt'], deleting: ['cancel', 'createFailed'], deleted: ['createFailed'] },
  running: { draining: ['drain'], deleting: ['delete'], deleted: ['vanished'] },
  draining: { running: ['drainCancelled'], deleting: ['delete'], deleted: ['vanished'] },
  deleting: { deleted: ['deleted', 'vanished'] },
  deleted: { deleting: ['delete', 'leak'] },
};

/** Whether `action` may move an instance from `from` to `to` (`from` null: a new record). */
export function moveAllowed(from: InstanceStatus | null, to: InstanceStatus, action: AuditAction): boolean {
  if (from === null) return INITIAL_STATUSES.includes(to);
  return STATUS_MOVES[from][to]?.includes(action) ?? false;
}

/** A status move the lifecycle does not allow: a bug, or a race the caller must handle. Not retryable. */
export class IllegalTransitionError extends DroverError {
  constructor(instanceId: string, from: InstanceStatus | null, to: InstanceStatus, action: AuditAction) {
    super(`moving instance ${instanceId} from ${from ?? 'nothing'} to ${to} (${action}): not a move its lifecycle allows`, { code: 'conflict', retryable: false });
  }
}
