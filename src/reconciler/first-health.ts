/**
 * Replans a group when its instances report health for the first time, at most once per window:
 * a plan reads the whole group, so a big group booting at once (2,000 first reports within
 * seconds) would otherwise be planned once per report. The first report of a window replans at
 * once; any later one in the window makes one more replan at its end. A window of 0 replans on
 * every first report.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { groupKeyOf } from './events.js';

export class FirstHealthReplans {
  private readonly windows = new Map<string, { timer: TimerHandle; more: boolean }>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs: number,
    private readonly replan: (tenant: string, group: string) => void,
  ) {}

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
      timer: this.clock.schedule(this.clock.nowMs() + this.windowMs, () => {
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
  }
}
