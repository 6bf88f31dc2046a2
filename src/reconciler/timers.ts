/**
 * DurableTimers: timers that survive a restart. Each is a row (key, due time, event) in the store
 * and an entry in an in-memory heap; one clock timer is armed for the earliest. Firing deletes the
 * row and hands the event to the reconciler. A crash between the two fires it again after the
 * restart: handlers are idempotent (level-triggered), so at-least-once is enough.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import type { ReconcileEvent } from './events.js';
import type { ReconcilerStore } from './ports.js';

interface Entry {
  key: string;
  dueAt: number;
  event: ReconcileEvent;
}

interface SerializedEvent extends Omit<ReconcileEvent, 'timestamp'> {
  timestamp?: number;
}

export function serializeEvent(event: ReconcileEvent): string {
  const out: SerializedEvent = { ...event, timestamp: event.timestamp?.getTime() };
  return JSON.stringify(out);
}

export function deserializeEvent(text: string): ReconcileEvent {
  const raw = JSON.parse(text) as SerializedEvent;
  const { timestamp, ...rest } = raw;
  return timestamp === undefined ? rest : { ...rest, timestamp: new Date(timestamp) };
}

export class DurableTimers {
  private readonly entries = new Map<string, Entry>();
  private heap: Entry[] = [];
  private armed: TimerHandle | undefined;
  private armedAt = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(
    private readonly store: ReconcilerStore,
    private readonly clock: Clock,
    private readonly fire: (event: ReconcileEvent, key: string) => void,
  ) {}

  /** Schedules every timer stored by an earlier run. */
  load(): number {
    let n = 0;
    for (const row of this.store.listTimers()) {
      let event: ReconcileEvent;
      try {
        event = deserializeEvent(row.event);
      } catch {
        this.store.deleteTimer(row.key);
        continue;
      }
      this.entries.set(row.key, { key: row.key, dueAt: row.dueAt, event });
      n++;
    }
    this.rebuild();
    return n;
  }

  /** Sets (or moves) timer `key`. Writes only when the due time or event changed. */
  set(key: string, dueAt: number, event: ReconcileEvent): void {
    if (this.stopped) return;
    const existing = this.entries.get(key);
    const text = serializeEvent(event);
    if (existing && existing.dueAt === dueAt && serializeEvent(existing.event) === text) return;
    this.store.setTimer(key, dueAt, text);
    const entry: Entry = { key, dueAt, event };
    this.entries.set(key, entry);
    this.push(entry);
    this.arm();
  }

  clear(key: string): void {
    if (!this.entries.has(key)) return;
    this.entries.delete(key);
    if (!this.stopped) this.store.deleteTimer(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  dueAt(key: string): number | null {
    return this.entries.get(key)?.dueAt ?? null;
  }

  /** Number of timers set. */
  get size(): number {
    return this.entries.size;
  }

  /** True when a timer is due now and has not fired yet. */
  hasDue(): boolean {
    this.dropStale();
    const top = this.heap[0];
    return top !== undefined && top.dueAt <= this.clock.nowMs();
  }

  /** Cancels the clock timer; stored rows stay for the next run. */
  stop(): void {
    this.stopped = true;
    this.armed?.cancel();
    this.armed = undefined;
  }

  private rebuild(): void {
    this.heap = [...this.entries.values()];
    this.heap.sort((a, b) => a.dueAt - b.dueAt);
    this.arm();
  }

  private dropStale(): void {
    // Entries replaced or cleared since they were pushed are skipped lazily.
    while (this.heap.length > 0) {
      const top = this.heap[0];
      if (top && this.entries.get(top.key) === top) return;
      this.pop();
    }
  }

  private arm(): void {
    if (this.stopped) return;
    this.dropStale();
    const top = this.heap[0];
    if (!top) return;
    if (this.armed && this.armedAt <= top.dueAt) return;
    this.armed?.cancel();
    this.armedAt = top.dueAt;
    this.armed = this.clock.schedule(top.dueAt, () => {
      this.armed = undefined;
      this.armedAt = Number.POSITIVE_INFINITY;
      this.fireDue();
    });
  }

  private fireDue(): void {
    if (this.stopped) return;
    const now = this.clock.nowMs();
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (!top || top.dueAt > now) break;
      this.pop();
      this.entries.delete(top.key);
      this.store.deleteTimer(top.key);
      this.fire(top.event, top.key);
    }
    this.arm();
  }

  // Binary heap on dueAt.
  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Entry;
      if (p.dueAt <= entry.dueAt) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        let smallestDue = last.dueAt;
        const le = heap[l];
        const re = heap[r];
        if (le && le.dueAt < smallestDue) {
          smallest = l;
          smallestDue = le.dueAt;
        }
        if (re && re.dueAt < smallestDue) smallest = r;
        if (smallest === i) break;
        heap[i] = heap[smallest] as Entry;
        i = smallest;
      }
      heap[i] = last;
    }
    return top;
  }
}
