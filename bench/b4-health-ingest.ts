/**
 * B4 health ingest: 100,000 running instances reporting. The figure (`reportsPerSec`) is the
 * server's real path for a report after the socket: the hub's steps for a text frame — the
 * frame's bytes to a string, `parseAgentMessage`, `HealthIngest.report` (the hub's group commit)
 * — down to the store's transaction per batch. Baselines, all in the same process and run: raw
 * prepared `UPDATE instance_health SET at = ? WHERE instance_id = ?` (the table a live instance's
 * health time lives in, migration 8) batched (the group commit's floor),
 * and one per statement (autocommit); `LocalDb.recordHealth` (one transaction per report: what the
 * hub called before the group commit) and `recordHealthBatch` alone. Target ≥ 20,000 reports/s,
 * and the real path ≥ 0.5 × raw batched updates.
 *
 * Why not a socket per report: on 2 shared cores a WebSocket client sending 200k+ frames/s would
 * spend as much CPU as the server and the figure would measure the client. The WebSocket framing
 * and the socket itself are measured end to end by B5 (real agents, real connections).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import pino from 'pino';
import { parseAgentMessage } from '../src/agent/protocol.js';
import { HEALTH_MAX_BATCH, HealthIngest } from '../src/server/health-ingest.js';
import { SystemClock, openLocalDb, templateHash } from '../src/index.js';
import { TEMPLATES, now, removeDir, round, tempDir } from './common.js';

export const B4_INSTANCES = 100_000;
/** How long both ways of writing run together, in alternating slices. */
const RUN_MS = 4_000;
/** Reports per batch for the batched paths: the group commit's bound (a full tick at a high rate). */
export const B4_BATCH = HEALTH_MAX_BATCH;

export interface B4Result {
  instances: number;
  /** The server's path (frame → parse → group commit → store): reports recorded per second. */
  reportsPerSec: number;
  /** Raw prepared UPDATE, B4_BATCH rows per transaction, measured interleaved with reportsPerSec. */
  rawGroupUpdatesPerSec: number;
  /** reportsPerSec / rawGroupUpdatesPerSec (target ≥ 0.5). */
  groupCommitRatio: number;
  /** recordHealth called directly, one transaction per report (the hub's path before the group commit). */
  directReportsPerSec: number;
  /** Raw prepared UPDATE per row, autocommit. */
  rawUpdatesPerSec: number;
  /** directReportsPerSec / rawUpdatesPerSec. */
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
    const update = raw.prepare<[number, string]>('UPDATE instance_health SET at = ? WHERE instance_id = ?');
    const rawBatchTx = raw.transaction((i: number) => {
      let changed = 0;
      for (let k = 0; k < B4_BATCH; k++) changed += update.run(at(), id(i + k)).changes;
      return changed;
    });

    // The hub's path: a frame as an agent sends it (the agent's own `at` in it), received as bytes.
    const frames = Array.from({ length: 1_000 }, (_, k) => Buffer.from(JSON.stringify({ type: 'health', at: new Date(base + k).toISOString(), workload: 'none' })));
    let recorded = 0;
    const counting = {
      recordHealthBatch: (reports: ReadonlyArray<{ instanceId: string; at: Date }>): number => {
        const n = db.recordHealthBatch(reports);
        recorded += n;
        return n;
      },
    };
    // Server time as the hub takes it (`clock.now()`); the fake one only grows, so each report is newer.
    const serverClock = new SystemClock();
    serverClock.now = () => new Date(at());
    const ingest = new HealthIngest({ clock: serverClock, db: counting, logger: pino({ level: 'silent' }) });
    const hubPath = (i: number): number => {
      const before = recorded;
      // B4_BATCH distinct instances: the batch bound commits the last one's batch at once.
      for (let k = 0; k < B4_BATCH; k++) {
        const msg = parseAgentMessage((frames[(i + k) % frames.length] as Buffer).toString('utf8'));
        if (msg?.type !== 'health') throw new Error('B4: a frame did not parse as a health report');
        ingest.report(id(i + k), serverClock.now(), msg.at);
      }
      if (ingest.waiting !== 0) throw new Error(`B4: ${ingest.waiting} reports still wait after a full batch`);
      return recorded - before;
    };
    const group = interleaved(B4_BATCH, hubPath, (i) => rawBatchTx(i));
    ingest.close();

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
      reportsPerSec: Math.round(group.a),
      rawGroupUpdatesPerSec: Math.round(group.b),
      groupCommitRatio: round(group.a / group.b, 2),
      directReportsPerSec: Math.round(single.a),
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
