/**
 * Replans a group when its instances report health for the first time, at most once per window:
 * a plan reads the whole group, so a big group booting at once (10,000 first reports within
 * seconds) would otherwise be planned once per report. The first report of a window replans at
 * once; any later one in the window makes one more replan at its end. A window of 0 replans on
 * every first report.
 *
 * The window grows with what a plan of the group costs: it is at least `PLAN_COST_FACTOR` times
 * the group's last plan (`planned`), so first-health replans take at most 1/PLAN_COST_FACTOR of
 * the thread however big the group (a 10,000-instance plan of ~150 ms: a window of ~1.5 s, not
 * 250 ms, which left a booting server no time for the agents' handshakes). A group whose plans
 * take under a millisecond keeps the configured window.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { groupKeyOf } from './events.js';

/** A window is at least this many times the group's last plan. */
export const PLAN_COST_FACTOR = 10;

export class FirstHealthReplans {
  private readonly windows = new Map<string, { timer: TimerHandle; more: boolean }>();
  /** The last plan's duration per group (ms), for groups whose plans are costly enough to matter. */
  private readonly planMs = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs: number,
    private readonly replan: (tenant: string, group: string) => void,
  ) {}

  /** The group's last plan took `durationMs` (the reconciler tells after each plan). */
  planned(tenant: string, group: string, durationMs: number): void {
    if (this.windowMs <= 0) return;
    const key = groupKeyOf(tenant, group);
    if (durationMs * PLAN_COST_FACTOR > this.windowMs) this.planMs.set(key, durationMs);
    else this.planMs.delete(key);
  }

  /** The window that opens now for the group, ms. */
  windowFor(tenant: string, group: string): number {
    if (this.windowMs <= 0) return 0;
    return Math.max(this.windowMs, PLAN_COST_FACTOR * (this.planMs.get(groupKeyOf(tenant, group)) ?? 0));
  }

  onFirstHealth(tenant: string, group: string): void {
    if (this.windowMs <= 0) {
      this.replan(tenant, group);
      return;
    }
    const key = groupKeyOf(tenant, group);
    const open = this.windows.get(key);
    if (open) {
      open.more = true;
      return;
    }
    this.replan(tenant, group);
    const window = {
      more: false,
      timer: this.clock.schedule(this.clock.nowMs() + this.windowFor(tenant, group), () => {
        this.windows.delete(key);
        if (window.more) this.onFirstHealth(tenant, group);
      }),
    };
    this.windows.set(key, window);
  }

  /** Cancels every open window (the reconciler stops). */
  stop(): void {
    for (const w of this.windows.values()) w.timer.cancel();
    this.windows.clear();
    this.planMs.clear();
  }
}
