/**
 * Fixtures that put rows into states directly, for tests of the code that reads them (the
 * simulator's checker, takeovers): the reconciler itself changes a status only through
 * `LocalDb.transition`, which refuses a move its lifecycle does not allow.
 */
import type Database from 'better-sqlite3';
import type { InstancePatch, InstanceStatus, LocalDb } from '../../src/store/index.js';

/** Writes fields of a row, the status included, without the lifecycle's checks. */
export function setRow(db: LocalDb, id: string, patch: InstancePatch & { status?: InstanceStatus }): void {
  const { status, ...rest } = patch;
  db.updateInstance(id, rest);
  if (status !== undefined) (db as unknown as { db: Database.Database }).db.prepare('UPDATE instances SET status = ? WHERE id = ?').run(status, id);
}
