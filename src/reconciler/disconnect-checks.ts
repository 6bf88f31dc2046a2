/**
 * Paces the checks that lost agent connections ask for (`CheckInstance`, cause "disconnect") in a
 * group whose plans are costly. Each check runs the group's handler, which plans the whole group:
 * when many agents drop one after the other (a reconnect storm, agents timing out while a server
 * boots) a 10,000-instance group was planned back to back, each plan ~150 ms, and the plans kept
 * the server from answering the agents' handshakes — which timed out and dropped more.
 *
 * Contract:
 * - A group whose plans are cheap (`windowFor` gives no more than `baseWindowMs`) is not paced:
 *   every check is released at once.
 * - For a costly group the first check is released at once and opens a window of
 *   `windowFor(group)` (10 × its last plan, first-health.ts); checks that arrive during it are
 *   kept (one per instance, the latest) and released together at its end, which opens the next
 *   window. So checks of a costly group cost at most about a tenth of the thread, and none waits
 *   longer than one window.
 * - `stop()` drops what is kept (the reconciler stops; a new leader checks every instance anyway).
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { groupKeyOf, type ReconcileEvent } from './events.js';

export class DisconnectChecks {
  private readonly windows = new Map<string, { timer: TimerHandle; kept: Map<string, ReconcileEvent> }>();

  constructor(
    private readonly clock: Clock,
    private readonly baseWindowMs: number,
    private readonly windowFor: (tenant: string, group: string) => number,
    private readonly release: (event: ReconcileEvent) => void,
  ) {}

  /** Checks kept for a window's end. */
  get kept(): number {
    let n = 0;
    for (const w of this.windows.values()) n += w.kept.size;
    return n;
  }

  add(event: ReconcileEvent & { tenant: string; groupKey: string; instanceId: string }): void {
    const { tenant, groupKey: group } = event;
    const key = groupKeyOf(tenant, group);
    const open = this.windows.get(key);
    if (open) {
      open.kept.set(event.instanceId, event);
      return;
    }
    const windowMs = this.windowFor(tenant, group);
    this.release(event);
    if (windowMs <= this.baseWindowMs) return;
    this.open(key, tenant, group, windowMs);
  }

  private open(key: string, tenant: string, group: string, windowMs: number): void {
    const window = {
      kept: new Map<string, ReconcileEvent>(),
      timer: this.clock.schedule(this.clock.nowMs() + windowMs, () => {
        this.windows.delete(key);
        if (window.kept.size === 0) return;
        for (const event of window.kept.values()) this.release(event);
        const next = this.windowFor(tenant, group);
        if (next > this.baseWindowMs) this.open(key, tenant, group, next);
      }),
    };
    this.windows.set(key, window);
  }

  stop(): void {
    for (const w of this.windows.values()) w.timer.cancel();
    this.windows.clear();
  }
}
