/**
 * Polling for data the event stream does not carry (the webhook deliveries): `run` every
 * `everyMs` while the page is visible, nothing while it is hidden (a background tab costs the
 * server no requests), and once at once when it becomes visible again, since what it shows may
 * be stale by then. Pure: the timers and the page's visibility are passed in (unit-tested under
 * Node; `usePoll` in hooks.ts gives it the browser's).
 */
export interface PollEnv {
  setInterval: (fn: () => void, ms: number) => number;
  clearInterval: (id: number) => void;
  visible: () => boolean;
  /** Calls `fn` on every change of visibility; returns the function that stops that. */
  onVisibilityChange: (fn: () => void) => () => void;
}

export class Poller {
  private timer: number | null = null;
  private offVisibility: (() => void) | null = null;

  constructor(
    private readonly run: () => void,
    private readonly everyMs: number,
    private readonly env: PollEnv,
  ) {}

  /** Starts polling (the first run is the caller's: this waits `everyMs` before it runs). */
  start(): void {
    if (this.offVisibility) return;
    this.offVisibility = this.env.onVisibilityChange(() => this.onVisibility());
    if (this.env.visible()) this.arm();
  }

  stop(): void {
    this.offVisibility?.();
    this.offVisibility = null;
    this.disarm();
  }

  /** Whether a timer is set (polling now). */
  get polling(): boolean {
    return this.timer !== null;
  }

  private onVisibility(): void {
    if (!this.env.visible()) return this.disarm();
    if (this.timer !== null) return;
    this.run();
    this.arm();
  }

  private arm(): void {
    if (this.timer === null) this.timer = this.env.setInterval(() => this.run(), this.everyMs);
  }

  private disarm(): void {
    if (this.timer !== null) this.env.clearInterval(this.timer);
    this.timer = null;
  }
}
