/**
 * CallGate: every provider call passes through it. It keeps Drover at the provider's API limit
 * and no faster, and lets urgent calls overtake bulk ones.
 *
 * - Rate: calls are spaced at `1 / maxCallsPerSecond` (GCRA with a tolerance of one interval,
 *   so a late timer is caught up without ever exceeding a two-call burst). 0 = unlimited.
 * - Creates are also spaced at least `createGapMs` apart (the shard's `createRateLimit`); a create
 *   waiting for its gap never holds back a delete or a status call.
 * - At most `maxConcurrent` calls are in flight, and at most `maxConcurrentCreates` creates: a
 *   provider's burst for launches is small (EC2's RunInstances bucket), and every create in
 *   flight when it runs out comes back throttled.
 * - Waiting calls start in priority order, first-in first-out within a priority.
 * - Adaptive rate (`adaptive`): a call that fails with a ThrottledError, or an error wrapping
 *   one (the provider said we were too fast), is not failed but queued again at the head of its
 *   priority, and its kind's own rate is cut to half the rate at which that kind's calls were
 *   *accepted* in the last second (once per cut: a throttled call that started before the last
 *   cut says nothing new), never below one call a second. While calls succeed the rate creeps
 *   back up, additively (half a call/s more per second of successes, or 5 % of the rate if that
 *   is more), so a provider whose limit was raised is used fully again. Below the provider's
 *   refill rate its bucket fills, and the climb above it spends what was saved, so the sawtooth
 *   costs little time and one throttle per tooth. Clouds limit each action separately (EC2 has
 *   a bucket for RunInstances, one for TerminateInstances, one for reads), so each kind has its
 *   own rate. A call throttled `maxThrottleRetries` times fails with its ThrottledError.
 * - Provider budget (`observeBudget`): a provider that says in its answers how many calls it has
 *   left (Hetzner's `RateLimit-Remaining`, and when the budget is full again) is held to it: the
 *   gate counts down from the last figure, refills at the rate the figures imply, and keeps a
 *   reserve (2 % of the limit, at least 1), spacing calls at the refill rate once the reserve is
 *   reached — it slows down before the limit instead of after a refusal.
 * Waiting happens on the injected clock; nothing sleeps inside a worker.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { isThrottled } from '../errors/index.js';
import { PRIORITIES, type Priority } from './priority.js';

export type CallKind = 'create' | 'delete' | 'read' | 'write';
export const CALL_KINDS: readonly CallKind[] = ['create', 'delete', 'read', 'write'];

export interface CallGateOptions {
  clock: Clock;
  maxCallsPerSecond?: number;
  maxConcurrent?: number;
  createGapMs?: number;
  /** Creates in flight at once (default: no limit beyond maxConcurrent). */
  maxConcurrentCreates?: number;
  /** Adapt each kind's rate to the provider's throttles (see the module comment). Default false. */
  adaptive?: boolean;
  /** Adaptive: how often one call may be throttled before it fails. Default 20. */
  maxThrottleRetries?: number;
}

interface PendingCall {
  kind: CallKind;
  priority: Priority;
  queuedAt: number;
  throttles: number;
  start: () => void;
}

export interface CallGateStats {
  waiting: number;
  inFlight: number;
  started: number;
  /** Calls the provider throttled (each retry counted). */
  throttled: number;
  /** The adaptive rate of each kind that has been throttled (calls/s); absent: not limited. */
  adaptiveRates: Partial<Record<CallKind, number>>;
}

/** One kind's adaptive rate. `rate` is Infinity until its first throttle. */
interface Lane {
  rate: number;
  /** GCRA theoretical arrival time of this kind's next call. */
  tat: number;
  lastCutAt: number;
  /** Start times of this kind's accepted calls in the last second (for the cut). */
  accepted: number[];
}

/** What a call rejected with, as an Error (a rejection with a non-Error keeps its text). */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The slowest an adaptive rate goes (calls/s). A kind that makes few calls has few accepted in
 * the last second when it is throttled (a list at start: none), and half of that would stall it
 * for many seconds; at the floor a provider that is slower still throttles again, and the call
 * waits its turn once more.
 */
const MIN_ADAPTIVE_RATE = 1;
const ACCEPTED_WINDOW_MS = 1_000;
/** Additive increase: calls/s gained per second of accepted calls (or 5 % of the rate if more). */
const INCREASE_PER_SECOND = 0.5;

export class CallGate {
  private readonly clock: Clock;
  private intervalMs: number;
  private maxConcurrent: number;
  private createGapMs: number;
  private readonly waiting = new Map<Priority, PendingCall[]>(PRIORITIES.map((p) => [p, []]));
  private waitingCount = 0;
  private inFlight = 0;
  private createsInFlight = 0;
  private maxConcurrentCreates: number;
  private started = 0;
  /** GCRA theoretical arrival time of the next call. */
  private tat = 0;
  private lastCreateAt = Number.NEGATIVE_INFINITY;
  /** No call starts before this time (set by `backOff`). */
  private pausedUntil = Number.NEGATIVE_INFINITY;
  private wakeup: TimerHandle | undefined;
  private wakeupAt = Number.POSITIVE_INFINITY;
  private idleWaiters: Array<() => void> = [];
  private adaptive: boolean;
  private readonly maxThrottleRetries: number;
  private readonly lanes = new Map<CallKind, Lane>(CALL_KINDS.map((k) => [k, { rate: Number.POSITIVE_INFINITY, tat: 0, lastCutAt: Number.NEGATIVE_INFINITY, accepted: [] }]));
  private throttled = 0;
  /** The provider's own budget, when it reports one (observeBudget). */
  private budget: { limit: number; tokens: number; at: number; perMs: number } | null = null;

  constructor(options: CallGateOptions) {
    this.clock = options.clock;
    this.intervalMs = options.maxCallsPerSecond ? 1000 / options.maxCallsPerSecond : 0;
    this.maxConcurrent = options.maxConcurrent ?? 64;
    this.createGapMs = options.createGapMs ?? 0;
    this.maxConcurrentCreates = options.maxConcurrentCreates ?? Number.POSITIVE_INFINITY;
    this.adaptive = options.adaptive ?? false;
    this.maxThrottleRetries = options.maxThrottleRetries ?? 20;
  }

  /** Applies new limits (config reload). */
  configure(options: Omit<CallGateOptions, 'clock' | 'maxThrottleRetries'>): void {
    if (options.maxCallsPerSecond !== undefined) this.intervalMs = options.maxCallsPerSecond ? 1000 / options.maxCallsPerSecond : 0;
    if (options.maxConcurrent !== undefined) this.maxConcurrent = options.maxConcurrent;
    if (options.createGapMs !== undefined) this.createGapMs = options.createGapMs;
    if (options.adaptive !== undefined) this.adaptive = options.adaptive;
    if (options.maxConcurrentCreates !== undefined) this.maxConcurrentCreates = options.maxConcurrentCreates;
    this.pump();
  }

  stats(): CallGateStats {
    const adaptiveRates: Partial<Record<CallKind, number>> = {};
    for (const [kind, lane] of this.lanes) if (Number.isFinite(lane.rate)) adaptiveRates[kind] = lane.rate;
    return { waiting: this.waitingCount, inFlight: this.inFlight, started: this.started, throttled: this.throttled, adaptiveRates };
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
        throttles: 0,
        start: () => {
          this.inFlight++;
          if (kind === 'create') this.createsInFlight++;
          this.started++;
          const startedAt = this.clock.nowMs();
          let result: Promise<T>;
          try {
            result = fn();
          } catch (err) {
            // Not Drover's error but whatever the call threw, made an Error so it has a message and a
            // stack. It stays a plain Error: it has no catalogue code, and isRetryable treats it as any
            // error of unknown origin (transient); a DroverError would claim a code nobody chose.
            result = Promise.reject(err instanceof Error ? err : new Error(String(err)));
          }
          result
            .then(
              (value) => {
                this.onAccepted(kind, startedAt);
                resolve(value);
              },
              (err: unknown) => {
                if (!isThrottled(err)) {
                  // The provider answered (with a refusal of another kind): the rate was not the problem.
                  this.onAccepted(kind, startedAt);
                  reject(asError(err));
                  return;
                }
                this.throttled++;
                if (!this.adaptive || call.throttles >= this.maxThrottleRetries) {
                  reject(asError(err));
                  return;
                }
                call.throttles++;
                this.onThrottled(kind, startedAt);
                // A throttled call did nothing at the provider: it waits again, ahead of its priority.
                this.waiting.get(priority)?.unshift(call);
                this.waitingCount++;
              },
            )
            .finally(() => {
              this.inFlight--;
              if (kind === 'create') this.createsInFlight--;
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

  /** A call of `kind` started at `startedAt` was accepted: its rate creeps back up. */
  private onAccepted(kind: CallKind, startedAt: number): void {
    if (!this.adaptive) return;
    const lane = this.lane(kind);
    lane.accepted.push(startedAt);
    if (lane.accepted.length > 4096) lane.accepted.splice(0, lane.accepted.length - 4096);
    if (!Number.isFinite(lane.rate)) return;
    // Additive increase per accepted call: at rate r, r calls a second raise it by ~1 call/s a second.
    const step = Math.max(INCREASE_PER_SECOND, lane.rate * 0.05);
    lane.rate += step / Math.max(lane.rate, 1);
  }

  /** The provider throttled a call of `kind` started at `startedAt`: its rate is cut to half what was accepted lately. */
  private onThrottled(kind: CallKind, startedAt: number): void {
    const lane = this.lane(kind);
    const now = this.clock.nowMs();
    // Calls already in flight at the last cut were sent at the old rate: their throttles are old news.
    if (startedAt <= lane.lastCutAt) return;
    lane.lastCutAt = now;
    const since = now - ACCEPTED_WINDOW_MS;
    lane.accepted = lane.accepted.filter((t) => t > since);
    const acceptedRate = (lane.accepted.length * 1000) / ACCEPTED_WINDOW_MS;
    const base = Number.isFinite(lane.rate) ? Math.min(lane.rate, Math.max(acceptedRate, MIN_ADAPTIVE_RATE)) : acceptedRate;
    lane.rate = Math.max(MIN_ADAPTIVE_RATE, base / 2);
    // Spaced from now: the calls just refused used the budget the provider had.
    lane.tat = now + 1000 / lane.rate;
  }

  private lane(kind: CallKind): Lane {
    const lane = this.lanes.get(kind);
    if (!lane) throw new Error(`unknown call kind ${kind}`);
    return lane;
  }

  /** When a call of `kind` may start by its own limits (create gap, adaptive rate). */
  private readyAt(kind: CallKind): number {
    let at = kind === 'create' ? this.lastCreateAt + this.createGapMs : Number.NEGATIVE_INFINITY;
    const lane = this.lane(kind);
    if (this.adaptive && Number.isFinite(lane.rate)) at = Math.max(at, lane.tat - 1000 / lane.rate);
    return at;
  }

  /**
   * The provider said how many calls it has left (`remaining` of `limit`) and when its budget is
   * full again (`resetAtMs`, epoch ms on this gate's clock). Figures that make no sense are ignored.
   */
  observeBudget(state: { limit: number; remaining: number; resetAtMs: number }): void {
    const { limit, remaining, resetAtMs } = state;
    if (!(limit > 0) || !(remaining >= 0) || remaining > limit || !Number.isFinite(resetAtMs)) return;
    const now = this.clock.nowMs();
    // The refill rate the figures imply: what is missing comes back by the reset time.
    const missing = limit - remaining;
    const perMs = missing > 0 && resetAtMs > now ? missing / (resetAtMs - now) : (this.budget?.perMs ?? 0);
    this.budget = { limit, tokens: remaining, at: now, perMs };
    this.pump();
  }

  /** When the next call may start by the provider's budget (its reserve kept). */
  private budgetReadyAt(now: number): number {
    const b = this.budget;
    if (!b) return Number.NEGATIVE_INFINITY;
    const reserve = Math.max(1, Math.ceil(b.limit * 0.02));
    const tokens = Math.min(b.limit, b.tokens + (now - b.at) * b.perMs);
    if (tokens >= reserve + 1) return Number.NEGATIVE_INFINITY;
    // No refill known: wait for the next figure (any call in flight brings one), at most a second.
    if (b.perMs <= 0) return this.inFlight > 0 ? Number.POSITIVE_INFINITY : now + 1_000;
    return now + (reserve + 1 - tokens) / b.perMs;
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
      const budgetAt = this.budgetReadyAt(now);
      if (budgetAt > now) {
        // Infinity: a call in flight will answer with new figures, and its end pumps.
        if (Number.isFinite(budgetAt)) this.wakeAt(budgetAt);
        return;
      }
      const ready = new Map<CallKind, number>(CALL_KINDS.map((k) => [k, this.readyAt(k)]));
      // Creates at their concurrency limit wait for one to finish (which pumps), not for a time.
      const createsFull = this.createsInFlight >= this.maxConcurrentCreates;
      const call = this.takeNext((kind) => (ready.get(kind) ?? 0) <= now && !(kind === 'create' && createsFull));
      if (!call) {
        // Every waiting call's kind waits for its own limit (create gap, adaptive rate).
        let next = Number.POSITIVE_INFINITY;
        for (const list of this.waiting.values()) for (const c of list) if (!(c.kind === 'create' && createsFull)) next = Math.min(next, ready.get(c.kind) ?? now);
        if (Number.isFinite(next)) this.wakeAt(next);
        return;
      }
      if (this.intervalMs > 0) this.tat = Math.max(this.tat, now) + this.intervalMs;
      if (this.budget) {
        // Counted down here; the answer's figures correct it.
        this.budget.tokens = Math.min(this.budget.limit, this.budget.tokens + (now - this.budget.at) * this.budget.perMs) - 1;
        this.budget.at = now;
      }
      if (call.kind === 'create') this.lastCreateAt = now;
      const lane = this.lane(call.kind);
      if (this.adaptive && Number.isFinite(lane.rate)) lane.tat = Math.max(lane.tat, now) + 1000 / lane.rate;
      call.start();
    }
  }

  private takeNext(kindReady: (kind: CallKind) => boolean): PendingCall | undefined {
    for (const priority of PRIORITIES) {
      const list = this.waiting.get(priority);
      if (!list || list.length === 0) continue;
      const index = list.findIndex((c) => kindReady(c.kind));
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
