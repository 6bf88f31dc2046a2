/**
 * HealthIngest: group commit for agents' health reports. The agent hub hands each report here;
 * reports are written to the store in one transaction per tick (`tickMs`, a few ms) instead of
 * one transaction each, which is what lets one server take far more reports per second (bench B4).
 *
 * Contract:
 * - A report is written at most `tickMs` after it arrived (on the injected clock), or at once
 *   when `maxBatch` distinct instances are waiting.
 * - Several reports of one instance within a tick collapse to the latest (a health report only
 *   moves `healthAt` forward; the earlier ones would be overwritten in the same transaction).
 *   Instances keep the order in which they first reported in the tick.
 * - `flush()` writes what waits now; `close()` flushes and refuses nothing later (a report after
 *   close is written at once, alone), so stopping the server loses no report it accepted.
 * - Durability: the store runs `synchronous = NORMAL` (WAL): a power loss can lose the last
 *   committed ticks. That is safe for health: a report is a soft fact that the next report (one
 *   health interval later) restores, and an instance counts as silent only after
 *   `missedHealthThreshold` intervals — hundreds of ticks.
 * - A failed batch (the store threw) is logged and dropped: the next reports carry the same fact.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import type { Logger } from '../logging/index.js';
import type { LocalDb } from '../store/index.js';

/** Default tick: long enough to gather many reports at a high rate, far below any health interval. */
export const HEALTH_TICK_MS = 5;
/** Default bound on one transaction (distinct instances). */
export const HEALTH_MAX_BATCH = 1_000;

export interface HealthIngestOptions {
  clock: Clock;
  db: Pick<LocalDb, 'recordHealthBatch'>;
  logger: Logger;
  tickMs?: number;
  maxBatch?: number;
  /** Called for each report once its transaction committed, with the agent's own timestamp (`at`), when it sent one. */
  onRecorded?: (instanceId: string, sentAt: string | undefined) => void;
}

interface Pending {
  at: Date;
  sentAt: string | undefined;
}

export class HealthIngest {
  private pending = new Map<string, Pending>();
  private timer: TimerHandle | undefined;
  private closed = false;
  private readonly tickMs: number;
  private readonly maxBatch: number;

  constructor(private readonly options: HealthIngestOptions) {
    this.tickMs = options.tickMs ?? HEALTH_TICK_MS;
    this.maxBatch = options.maxBatch ?? HEALTH_MAX_BATCH;
  }

  /** Reports waiting for the next commit (distinct instances). */
  get waiting(): number {
    return this.pending.size;
  }

  /** Accepts a report received at `at` (server time). */
  report(instanceId: string, at: Date, sentAt?: string): void {
    const previous = this.pending.get(instanceId);
    // Collapse within the tick; a later report never moves the recorded time back.
    if (!previous || previous.at.getTime() <= at.getTime()) this.pending.set(instanceId, { at, sentAt });
    if (this.closed || this.pending.size >= this.maxBatch) {
      this.flush();
      return;
    }
    if (!this.timer) {
      const { clock } = this.options;
      this.timer = clock.schedule(clock.nowMs() + this.tickMs, () => {
        this.timer = undefined;
        this.flush();
      });
    }
  }

  /** Writes every waiting report in one transaction. */
  flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const reports: Array<{ instanceId: string; at: Date }> = [];
    for (const [instanceId, p] of batch) reports.push({ instanceId, at: p.at });
    try {
      this.options.db.recordHealthBatch(reports);
    } catch (err) {
      this.options.logger.warn({ reports: reports.length, err: err instanceof Error ? err.message : String(err) }, 'health reports not recorded');
      return;
    }
    const { onRecorded } = this.options;
    if (onRecorded) for (const [instanceId, p] of batch) onRecorded(instanceId, p.sentAt);
  }

  /** Flushes what waits; later reports are written at once. */
  close(): void {
    this.closed = true;
    this.flush();
  }
}
