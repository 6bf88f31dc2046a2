/**
 * CallGate: every provider call passes through it. It keeps Drover at the provider's API limit
 * and no faster, and lets urgent calls overtake bulk ones.
 *
 * - Rate: calls are spaced at `1 / maxCallsPerSecond` (GCRA with a tolerance of one interval,
 *   so a late timer is caught up without ever exceeding a two-call burst). 0 = unlimited.
 * - Creates are also spaced at least `createGapMs` apart (the shard's `createRateLimit`); a create
 *   waiting for its gap never holds back a delete or a status call.
 * - At most `maxConcurrent` calls are in flight.
 * - Waiting calls start in priority order, first-in first-out within a priority.
 * Waiting happens on the injected clock; nothing sleeps inside a worker.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { PRIORITIES, type Priority } from './priority.js';

export type CallKind = 'create' | 'delete' | 'read' | 'write';

export interface CallGateOptions {
  clock: Clock;
  maxCallsPerSecond?: number;
  maxConcurrent?: number;
  createGapMs?: number;
}

interface PendingCall {
  kind: CallKind;
  priority: Priority;
  queuedAt: number;
  start: () => void;
}

export interface CallGateStats {
  waiting: number;
  inFlight: number;
  started: number;
}

export class CallGate {
  private readonly clock: Clock;
  private intervalMs: number;
  private maxConcurrent: number;
  private createGapMs: number;
  private readonly waiting = new Map<Priority, PendingCall[]>(PRIORITIES.map((p) => [p, []]));
  private waitingCount = 0;
  private inFlight = 0;
  private started = 0;
  /** GCRA theoretical arrival time of the next call. */
  private tat = 0;
  private lastCreateAt = Number.NEGATIVE_INFINITY;
  /** No call starts before this time (set by `backOff`). */
  private pausedUntil = Number.NEGATIVE_INFINITY;
  private wakeup: TimerHandle | undefined;
  private wakeupAt = Number.POSITIVE_INFINITY;
  private idleWaiters: Array<() => void> = [];

  constructor(options: CallGateOptions) {
    this.clock = options.clock;
    this.intervalMs = options.maxCallsPerSecond ? 1000 / options.maxCallsPerSecond : 0;
    this.maxConcurrent = options.maxConcurrent ?? 64;
    this.createGapMs = options.createGapMs ?? 0;
  }

  /** Applies new limits (config reload). */
  configure(options: Omit<CallGateOptions, 'clock'>): void {
    if (options.maxCallsPerSecond !== undefined) this.intervalMs = options.maxCallsPerSecond ? 1000 / options.maxCallsPerSecond : 0;
    if (options.maxConcurrent !== undefined) this.maxConcurrent = options.maxConcurrent;
    if (options.createGapMs !== undefined) this.createGapMs = options.createGapMs;
    this.pump();
  }

  stats(): CallGateStats {
    return { waiting: this.waitingCount, inFlight: this.inFlight, started: this.started };
  }

  /** When the next create may start, if creates are being spaced (for "why blocked"). */
  nextCreateAt(): number | null {
    return this.createGapMs > 0 ? this.lastCreateAt + this.createGapMs : null;
  }

  /** Queues `fn`; it runs when the limits and its priority allow. Resolves or rejects with it. */
  run<T>(kind: CallKind, priority: Priority, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: PendingCall = {
        kind,
        priority,
        queuedAt: this.clock.nowMs(),
        start: () => {
          this.inFlight++;
          this.started++;
          let result: Promise<T>;
          try {
            result = fn();
          } catch (err) {
            // Not Drover's error but whatever the call threw, made an Error so it has a message and a
            // stack. It stays a plain Error: it has no catalogue code, and isRetryable treats it as any
            // error of unknown origin (transient); a DroverError would claim a code nobody chose.
            result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
          }
          result.then(resolve, reject).finally(() => {
            this.inFlight--;
            this.pump();
            this.checkIdle();
          });
        },
      };
      this.waiting.get(priority)?.push(call);
      this.waitingCount++;
      this.pump();
    });
  }

  /** Pauses every call for `ms` (the provider said we were too fast). */
  backOff(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.nowMs() + ms);
    // Once the pause ends, calls are spaced from its end again.
    if (this.intervalMs > 0) this.tat = Math.max(this.tat, this.pausedUntil + this.intervalMs);
    this.pump();
  }

  /**
   * True when no call is in flight and none can start now: calls still waiting wait for a future
   * time (their rate-limit slot or create gap), which is not "due".
   */
  isIdle(): boolean {
    if (this.inFlight > 0) return false;
    return this.waitingCount === 0 || this.wakeupAt > this.clock.nowMs();
  }

  /** True when a waiting call could start now (it will, on the next turn). */
  hasDueWork(): boolean {
    return this.waitingCount > 0 && this.inFlight < this.maxConcurrent && this.wakeupAt <= this.clock.nowMs();
  }

  /** Resolves when `isIdle()` holds. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private checkIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private pump(): void {
    while (this.waitingCount > 0 && this.inFlight < this.maxConcurrent) {
      const now = this.clock.nowMs();
      if (now < this.pausedUntil) {
        this.wakeAt(this.pausedUntil);
        return;
      }
      if (this.intervalMs > 0 && now < this.tat - this.intervalMs) {
        this.wakeAt(this.tat - this.intervalMs);
        return;
      }
      const createOk = now >= this.lastCreateAt + this.createGapMs;
      const call = this.takeNext(createOk);
      if (!call) {
        // Only creates wait, and their gap has not passed.
        this.wakeAt(this.lastCreateAt + this.createGapMs);
        return;
      }
      if (this.intervalMs > 0) this.tat = Math.max(this.tat, now) + this.intervalMs;
      if (call.kind === 'create') this.lastCreateAt = now;
      call.start();
    }
  }

  private takeNext(createOk: boolean): PendingCall | undefined {
    for (const priority of PRIORITIES) {
      const list = this.waiting.get(priority);
      if (!list || list.length === 0) continue;
      const index = createOk ? 0 : list.findIndex((c) => c.kind !== 'create');
      if (index < 0) continue;
      const [call] = list.splice(index, 1);
      this.waitingCount--;
      return call;
    }
    return undefined;
  }

  private wakeAt(atMs: number): void {
    if (this.wakeup && this.wakeupAt <= atMs) return;
    this.wakeup?.cancel();
    this.wakeupAt = atMs;
    this.wakeup = this.clock.schedule(atMs, () => {
      this.wakeup = undefined;
      this.wakeupAt = Number.POSITIVE_INFINITY;
      this.pump();
      this.checkIdle();
    });
    this.checkIdle();
  }
}
