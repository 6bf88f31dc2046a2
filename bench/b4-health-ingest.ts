/**
 * B4 health ingest: 100,000 running instances reporting. Measured: sustained health reports
 * recorded per second through LocalDb.recordHealth (what the server's agent hub calls for each
 * report) and through recordHealthBatch (one transaction per batch), against raw SQLite updates
 * of the same rows in the same process: a prepared `UPDATE instances SET health_at = ? WHERE
 * id = ?` in a loop (autocommit) and in batch transactions. Target ≥ 20,000 reports/s.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { openLocalDb, templateHash } from '../src/index.js';
import { TEMPLATES, now, removeDir, round, tempDir } from './common.js';

export const B4_INSTANCES = 100_000;
/** How long both ways of writing run together, in alternating slices. */
const RUN_MS = 4_000;
/** Reports per batch for the batched paths (about one server ingest tick at 100k agents). */
export const B4_BATCH = 500;

export interface B4Result {
  instances: number;
  /** recordHealth, one report at a time (the server's path): reports recorded per second. */
  reportsPerSec: number;
  /** Raw prepared UPDATE per row, autocommit. */
  rawUpdatesPerSec: number;
  /** reportsPerSec / rawUpdatesPerSec. */
  ratio: number;
  /** recordHealthBatch, B4_BATCH reports per call. */
  batchReportsPerSec: number;
  /** Raw prepared UPDATE, B4_BATCH rows per transaction. */
  rawBatchUpdatesPerSec: number;
  /** batchReportsPerSec / rawBatchUpdatesPerSec. */
  batchRatio: number;
  targetPerSec: number;
  batch: number;
}

interface Run {
  counted: number;
  elapsedMs: number;
}

/** Runs `step(i)` (which writes `per` reports starting at report i) for `ms`; returns what it recorded. */
function sustained(per: number, ms: number, next: { i: number }, step: (i: number) => number): Run {
  // Warm-up: let the statements and the page cache settle.
  for (let k = 0; k < 500; k += per) step((next.i += per) - per);
  let counted = 0;
  let done = 0;
  const started = now();
  let elapsedMs = 0;
  while (elapsedMs < ms) {
    for (let k = 0; k < 1_000; k += per) {
      counted += step(next.i);
      next.i += per;
      done += per;
    }
    elapsedMs = now() - started;
  }
  if (counted !== done) throw new Error(`B4: ${done - counted} of ${done} writes were not recorded`);
  return { counted, elapsedMs };
}

/**
 * A and B measured in alternating slices (A B B A A B B A ...), RUN_MS in all, so noise and drift
 * over the run (other processes, WAL growth, checkpoints) hit both alike.
 */
function interleaved(per: number, a: (i: number) => number, b: (i: number) => number): { a: number; b: number } {
  const next = { i: 0 };
  const slices = 8;
  const sliceMs = RUN_MS / (2 * slices);
  const total = { a: { counted: 0, elapsedMs: 0 }, b: { counted: 0, elapsedMs: 0 } };
  const add = (to: Run, run: Run): void => {
    to.counted += run.counted;
    to.elapsedMs += run.elapsedMs;
  };
  for (let k = 0; k < slices; k++) {
    const order = k % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
    for (const which of order) add(total[which], sustained(per, sliceMs, next, which === 'a' ? a : b));
  }
  return { a: (total.a.counted / total.a.elapsedMs) * 1000, b: (total.b.counted / total.b.elapsedMs) * 1000 };
}

export async function runB4(): Promise<B4Result> {
  const dir = tempDir();
  const path = join(dir, 'drover.db');
  const db = openLocalDb(path);
  try {
    const hash = templateHash(TEMPLATES.web);
    const base = Date.now() - 3_600_000;
    const ids: string[] = [];
    db.transaction(() => {
      for (let n = 0; n < B4_INSTANCES; n++) {
        const id = `i-${String(n).padStart(16, '0')}`;
        ids.push(id);
        const createdAt = new Date(base);
        db.insertInstance({
          id,
          tenant: `t${n % 20}`,
          group: `g${n % 2000}`,
          templateName: 'web',
          templateHash: hash,
          createReason: 'scaleUp',
          createdAt,
          providerId: `sim-b4-${n}`,
          status: 'running',
          confirmedAt: createdAt,
          healthAt: createdAt, // steady state: every instance has reported before
        });
      }
    });
    // Report i is for instance i mod N, at a time that only grows: every report is newer than the one recorded.
    let clock = base + 1_000;
    const at = (): number => ++clock;
    const id = (i: number): string => ids[i % B4_INSTANCES] ?? '';

    // The same rows, raw, on a second connection of this process with the same settings.
    const raw = new Database(path);
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = NORMAL');
    raw.pragma('busy_timeout = 5000');
    const update = raw.prepare<[number, string]>('UPDATE instances SET health_at = ? WHERE id = ?');
    const rawBatchTx = raw.transaction((i: number) => {
      let changed = 0;
      for (let k = 0; k < B4_BATCH; k++) changed += update.run(at(), id(i + k)).changes;
      return changed;
    });

    const single = interleaved(
      1,
      (i) => (db.recordHealth(id(i), new Date(at())) ? 1 : 0),
      (i) => update.run(at(), id(i)).changes,
    );
    const batched = interleaved(
      B4_BATCH,
      (i) => {
        const reports: Array<{ instanceId: string; at: Date }> = [];
        for (let k = 0; k < B4_BATCH; k++) reports.push({ instanceId: id(i + k), at: new Date(at()) });
        return db.recordHealthBatch(reports);
      },
      (i) => rawBatchTx(i),
    );
    raw.close();

    return {
      instances: B4_INSTANCES,
      reportsPerSec: Math.round(single.a),
      rawUpdatesPerSec: Math.round(single.b),
      ratio: round(single.a / single.b, 2),
      batchReportsPerSec: Math.round(batched.a),
      rawBatchUpdatesPerSec: Math.round(batched.b),
      batchRatio: round(batched.a / batched.b, 2),
      targetPerSec: 20_000,
      batch: B4_BATCH,
    };
  } finally {
    db.close();
    removeDir(dir);
  }
}
