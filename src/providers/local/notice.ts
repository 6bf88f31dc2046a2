/**
 * Termination notices of local instances, and the sweep that honours them. A notice is what a
 * cloud publishes in instance metadata before it reclaims a spot instance: here it is
 * `<instance dir>/notice.json` = `{ "terminateAt": ISO }`, written by `drover local notice`
 * (or a test). The instance's agent forwards it to the server; the sweep deletes the instance
 * once `terminateAt` has passed, as the cloud would.
 */
import { existsSync } from 'node:fs';
import type { Clock, TimerHandle } from '../../clock/index.js';
import { InstanceNotFoundError, InvalidRequestError, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { readJsonFile, writeFileAtomic } from './files.js';
import { localInstancePaths } from './instance-store.js';

/**
 * Publishes a termination notice for a local instance, as a cloud does in instance metadata:
 * `<dir>/notice.json` = `{ "terminateAt": ISO }`. The instance's agent forwards it to the server,
 * and a started LocalProvider deletes the instance once `terminateAt` has passed.
 * Throws InstanceNotFoundError when the instance has no folder.
 */
export function writeNotice(stateDir: string, instanceId: string, terminateAt: Date): void {
  if (Number.isNaN(terminateAt.getTime())) throw new InvalidRequestError('termination notice: invalid time');
  const paths = localInstancePaths(stateDir, instanceId);
  if (!existsSync(paths.meta)) throw new InstanceNotFoundError(instanceId);
  writeFileAtomic(paths.notice, `${JSON.stringify({ terminateAt: terminateAt.toISOString() })}\n`, 0o600);
}

/** The termination time in `<dir>/notice.json`, or null when there is no valid notice. */
export function readNotice(stateDir: string, instanceId: string): Date | null {
  const raw = readJsonFile(localInstancePaths(stateDir, instanceId).notice);
  if (!raw || typeof raw !== 'object') return null;
  const at = (raw as Record<string, unknown>).terminateAt;
  if (typeof at !== 'string') return null;
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? null : new Date(ms);
}

/** What the sweep needs from the provider it runs in. */
export interface NoticeSweepOptions {
  stateDir: string;
  clock: Clock;
  log: Logger;
  /** Time between passes. */
  periodMs: number;
  /** Whether this process may change instances now; a pass does nothing otherwise. */
  mayMutate: () => boolean;
  /** The live instances; listing them also collects the folders of dead ones. */
  liveInstances: () => AsyncIterable<{ id: string }>;
  /** Deletes one instance; InstanceNotFoundError when it went meanwhile. */
  deleteInstance: (id: string) => Promise<void>;
}

/** Runs a pass every `periodMs` between `start()` and `close()`; `runOnce()` runs one now. */
export class NoticeSweep {
  private timer: TimerHandle | undefined;
  private inProgress: Promise<void> | undefined;
  private running = false;

  constructor(private readonly options: NoticeSweepOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  /** Stops the timer and waits for a pass in progress. */
  async close(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    await this.inProgress;
  }

  /** One pass: deletes the instances whose notice is due (listing them collects dead folders). */
  async runOnce(): Promise<void> {
    const { stateDir, clock, log, mayMutate, liveInstances, deleteInstance } = this.options;
    if (!mayMutate()) return; // a replica that does not lead leaves the instances alone
    const nowMs = clock.nowMs();
    for await (const { id } of liveInstances()) {
      const notice = readNotice(stateDir, id);
      if (!notice || notice.getTime() > nowMs) continue;
      log.info({ providerId: id, terminateAt: notice.toISOString() }, 'termination notice due; deleting local instance');
      try {
        await deleteInstance(id);
      } catch (err) {
        if (!(err instanceof InstanceNotFoundError)) log.error({ providerId: id, err: errorMessage(err) }, 'deleting a local instance at its notice time failed');
      }
    }
  }

  private schedule(): void {
    if (!this.running) return;
    const { clock, log, periodMs } = this.options;
    this.timer = clock.schedule(clock.nowMs() + periodMs, () => {
      this.inProgress = this.runOnce()
        .catch((err: unknown) => log.error({ err: errorMessage(err) }, 'local provider sweep failed'))
        .finally(() => {
          this.inProgress = undefined;
          this.schedule();
        });
    });
  }
}
