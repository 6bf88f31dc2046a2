/**
 * Fixtures that put rows into states directly, for tests of the code that reads them (the
 * simulator's checker, takeovers): the reconciler itself changes a status only through
 * `LocalDb.transition`, which refuses a move its lifecycle does not allow.
 */
import type { InstancePatch, InstanceStatus, LocalDb } from '../../src/store/index.js';

/**
 * Writes fields of a row, the status included, without the lifecycle's checks: through the
 * store's own field writer (which `transition` uses after its check), so what goes with a status
 * change — a live instance's health time in instance_health, a deleted one's in its row — stays
 * as the store keeps it.
 */
export function setRow(db: LocalDb, id: string, patch: InstancePatch & { status?: InstanceStatus }): void {
  (db as unknown as { writeFields(id: string, patch: InstancePatch & { status?: InstanceStatus }): void }).writeFields(id, patch);
}
