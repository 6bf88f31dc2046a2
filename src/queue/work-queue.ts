/**
 * KeyedWorkQueue: the reconciler's event queue.
 *
 * Contracts:
 * - `add` never blocks and never drops: items coalesce per key (a group) and per coalescing key
 *   inside it (an event type and instance), so the queue holds at most one entry per distinct
 *   (key, coalescing key) — bounded by keys, not by events.
 * - A key is never handled by two workers at once; items that arrive while it runs wait for that
 *   run to end, then run in a new batch. Different keys run concurrently, up to `concurrency`.
 * - Ready keys start in priority order (urgent first), first-in first-out within a priority.
 * - A barrier item runs alone: once one is added, no new key starts until every running key has
 *   finished and the barrier handler has run — except the keys that were ready when the previous
 *   barrier ended: each of those starts before the next barrier, so back-to-back barriers (a
 *   retried InitialReconcile whose list keeps timing out, a periodic resync) cannot starve them.
 * - Work added starts on the next turn of the event loop (onNextTurn), not inside `add`: items
 *   that arrive together (one I/O batch, such as many agents' messages or disconnects) coalesce
 *   into one run per key instead of a run each. A run that ends starts the next at once.
 */
import { onNextTurn } from '../clock/index.js';
import { Fifo, PRIORITIES, Priority } from './priority.js';

export interface QueueObserver {
  /** An item was added (after coalescing, `coalesced` says whether it merged into another). */
  added?(key: string, coalesced: boolean): void;
  /** A key started after waiting `waitMs`. */
  started?(key: string, waitMs: number): void;
  /** A key's run ended after `durationMs`. */
  finished?(key: string, durationMs: number, error: unknown): void;
}

export interface KeyedWorkQueueOptions<T> {
  concurrency: number;
  /** Handles a batch of items for one key. */
  handler: (key: string, items: T[]) => Promise<void>;
  /** Handles the barrier items (coalesced into one run). */
  barrierHandler: (items: T[]) => Promise<void>;
  /** Merges a new item into one already queued with the same coalescing key. */
  merge?: (queued: T, incoming: T) => T;
  /** Called when a handler throws; the queue itself does not retry. */
  onError: (key: string | null, error: unknown) => void;
  /** Monotonic milliseconds, for wait and run times. */
  now: () => number;
  observer?: QueueObserver;
}

interface Slot<T> {
  key: string;
  items: Map<string, T>;
  priority: Priority;
  /** Priority under which the key sits in a ready list, or null when it is not in one. */
  readyAt: Priority | null;
  enqueuedAt: number;
  running: boolean;
  startedAt: number | null;
}

export class KeyedWorkQueue<T> {
  private readonly slots = new Map<string, Slot<T>>();
  private readonly ready = new Map<Priority, Fifo<string>>(PRIORITIES.map((p) => [p, new Fifo<string>()]));
  private readyCount = 0;
  private running = 0;
  private barrierItems = new Map<string, T>();
  private barrierRunning = false;
  private barrierStartedAt: number | null = null;
  /** Keys that were ready when the last barrier ended: each starts before the next barrier. */
  private owed = new Set<string>();
  private paused = false;
  private pumpScheduled = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: KeyedWorkQueueOptions<T>) {}

  /** Keys waiting to run (not counting running ones). */
  get depth(): number {
    return this.readyCount + (this.barrierItems.size > 0 ? 1 : 0);
  }

  /** Keys running now. */
  get active(): number {
    return this.running + (this.barrierRunning ? 1 : 0);
  }

  /** Items held (queued or waiting for their key's run to end). */
  get itemCount(): number {
    let n = this.barrierItems.size;
    for (const slot of this.slots.values()) n += slot.items.size;
    return n;
  }

  /** Start times (ms) of the runs in progress, for "unfinished work" metrics. */
  runningSince(): number[] {
    const out: number[] = [];
    for (const slot of this.slots.values()) if (slot.running && slot.startedAt !== null) out.push(slot.startedAt);
    if (this.barrierStartedAt !== null) out.push(this.barrierStartedAt);
    return out;
  }

  /** Age in ms of the longest-waiting ready key, 0 when none waits. */
  oldestWaitMs(): number {
    const now = this.options.now();
    let oldest = 0;
    for (const slot of this.slots.values()) {
      if (slot.readyAt !== null) oldest = Math.max(oldest, now - slot.enqueuedAt);
    }
    return oldest;
  }

  add(key: string, coalesceKey: string, item: T, priority: Priority): void {
    let slot = this.slots.get(key);
    if (!slot) {
      slot = { key, items: new Map(), priority, readyAt: null, enqueuedAt: this.options.now(), running: false, startedAt: null };
      this.slots.set(key, slot);
    }
    const existing = slot.items.get(coalesceKey);
    slot.items.set(coalesceKey, existing && this.options.merge ? this.options.merge(existing, item) : item);
    this.options.observer?.added?.(key, existing !== undefined);
    if (slot.items.size === 1 && !slot.running && slot.readyAt === null) {
      slot.priority = priority;
      slot.enqueuedAt = this.options.now();
    } else if (priority < slot.priority) {
      slot.priority = priority;
    }
    if (!slot.running) this.makeReady(slot);
    this.schedulePump();
  }

  addBarrier(coalesceKey: string, item: T): void {
    const existing = this.barrierItems.get(coalesceKey);
    this.barrierItems.set(coalesceKey, existing && this.options.merge ? this.options.merge(existing, item) : item);
    this.options.observer?.added?.('*', existing !== undefined);
    this.schedulePump();
  }

  /** Stops starting new work (running work finishes). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Drops everything queued (not what runs). */
  clear(): void {
    for (const slot of this.slots.values()) {
      slot.items.clear();
      slot.readyAt = null;
    }
    for (const fifo of this.ready.values()) while (fifo.shift() !== undefined);
    this.readyCount = 0;
    this.barrierItems.clear();
    for (const [key, slot] of this.slots) if (!slot.running) this.slots.delete(key);
    this.checkIdle();
  }

  /** True when nothing is queued or running. */
  isIdle(): boolean {
    return this.readyCount === 0 && this.running === 0 && this.barrierItems.size === 0 && !this.barrierRunning;
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private makeReady(slot: Slot<T>): void {
    if (slot.readyAt !== null && slot.readyAt <= slot.priority) return;
    if (slot.readyAt === null) this.readyCount++;
    // A stale entry left in a lower-priority list is skipped when popped.
    slot.readyAt = slot.priority;
    this.ready.get(slot.priority)?.push(slot.key);
  }

  private popReady(): Slot<T> | undefined {
    for (const priority of PRIORITIES) {
      const fifo = this.ready.get(priority);
      if (!fifo) continue;
      for (;;) {
        const key = fifo.shift();
        if (key === undefined) break;
        const slot = this.slots.get(key);
        if (!slot || slot.readyAt !== priority || slot.running) continue;
        slot.readyAt = null;
        this.readyCount--;
        return slot;
      }
    }
    return undefined;
  }

  /** Pumps on the next turn of the event loop, once however many items are added before it. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // Not a timer: the pump waits for the next turn of the event loop, so that items added in one
    // I/O batch coalesce (see the contract above). No time passes, on any clock.
    onNextTurn(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.paused) return;
    if (this.barrierRunning) return;
    if (this.barrierItems.size > 0) {
      while (this.running < this.options.concurrency) {
        const slot = this.popOwed();
        if (!slot) break;
        this.runSlot(slot);
      }
      if (this.owed.size === 0 && this.running === 0) this.runBarrier();
      return;
    }
    while (this.running < this.options.concurrency) {
      const slot = this.popReady();
      if (!slot) break;
      this.owed.delete(slot.key);
      this.runSlot(slot);
    }
    this.checkIdle();
  }

  /** A key owed a start before the next barrier that is still waiting to run, if any. */
  private popOwed(): Slot<T> | undefined {
    for (const key of this.owed) {
      this.owed.delete(key);
      const slot = this.slots.get(key);
      if (!slot || slot.readyAt === null || slot.running) continue;
      // Its entry in the priority FIFO goes stale: popReady skips slots no longer ready there.
      slot.readyAt = null;
      this.readyCount--;
      return slot;
    }
    return undefined;
  }

  private runSlot(slot: Slot<T>): void {
    const items = [...slot.items.values()];
    slot.items.clear();
    // Items added while this batch runs set the priority of the next batch.
    slot.priority = Priority.bulk;
    slot.running = true;
    this.running++;
    const started = this.options.now();
    slot.startedAt = started;
    this.options.observer?.started?.(slot.key, started - slot.enqueuedAt);
    let failure: unknown = null;
    this.call(() => this.options.handler(slot.key, items))
      .catch((err: unknown) => {
        failure = err;
        this.options.onError(slot.key, err);
      })
      .finally(() => {
        this.options.observer?.finished?.(slot.key, this.options.now() - started, failure);
        slot.running = false;
        slot.startedAt = null;
        this.running--;
        if (slot.items.size > 0) {
          slot.enqueuedAt = this.options.now();
          this.makeReady(slot);
        } else {
          this.slots.delete(slot.key);
        }
        this.pump();
      });
  }

  private runBarrier(): void {
    const items = [...this.barrierItems.values()];
    this.barrierItems.clear();
    this.barrierRunning = true;
    const started = this.options.now();
    this.barrierStartedAt = started;
    this.options.observer?.started?.('*', 0);
    let failure: unknown = null;
    this.call(() => this.options.barrierHandler(items))
      .catch((err: unknown) => {
        failure = err;
        this.options.onError(null, err);
      })
      .finally(() => {
        this.options.observer?.finished?.('*', this.options.now() - started, failure);
        this.barrierRunning = false;
        this.barrierStartedAt = null;
        this.owed = new Set([...this.slots.values()].filter((slot) => slot.readyAt !== null && !slot.running).map((slot) => slot.key));
        this.pump();
      });
  }

  /** Calls a handler; one that throws instead of rejecting is treated as rejecting. */
  private call(fn: () => Promise<void>): Promise<void> {
    try {
      return fn();
    } catch (err) {
      // Not Drover's error but whatever the handler threw, made an Error so it has a message and a
      // stack. It stays a plain Error: it has no catalogue code, and isRetryable treats it as any
      // error of unknown origin (transient); a DroverError would claim a code nobody chose.
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private checkIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
