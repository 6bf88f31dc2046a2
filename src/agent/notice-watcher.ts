/**
 * Termination notices: a cloud announces that it will take the instance (a spot interruption, a
 * scheduled retirement); the agent passes the time on to the server, which starts a replacement.
 *
 * A `NoticeWatcher` finds notices; where it looks is its own business. The first one polls a local
 * file (`noticeFile`, which the local provider writes like instance metadata); a cloud's
 * instance-metadata watcher is another `NoticeWatcher` (usually a `PollingNoticeWatcher` with its
 * own `read`), chosen in `noticeWatcherFor` from the agent config. The `NoticeSender` turns
 * notices into `notice` messages whatever watcher found them.
 *
 * Contracts:
 * - Watchers. `start(onNotice)` begins watching; `onNotice` is called once per distinct notice
 *   (a notice equal to the last one reported is not reported again), never after `stop()`.
 * - Polling. A `PollingNoticeWatcher` reads at once and then `pollMs` after each read ends; a
 *   read that fails (throws or rejects) is logged and counts as no notice.
 * - File. The notice file holds `{ "terminateAt": ISO }`; a missing, unreadable or invalid file
 *   is no notice. The local file watcher polls every second by default.
 * - Sending. Each reported notice is sent once as `notice` (`terminateAt` as ISO): at once when
 *   connected, else by `flush()` (the agent calls it at each welcome). Only the latest unsent
 *   notice is kept.
 */
import { readFileSync } from 'node:fs';
import type { Clock, TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { AgentConfig } from './config.js';
import { isoToMs, type AgentMessage } from './protocol.js';

export interface NoticeWatcher {
  /** Begins watching; `onNotice` gets each distinct termination time once. */
  start(onNotice: (terminateAt: Date) => void): void;
  /** Stops watching: no more `onNotice` calls. */
  stop(): void;
}

/** What a notice watcher may use. */
export interface NoticeWatcherDeps {
  clock: Clock;
  logger: Logger;
  /** How often a polling watcher reads. Default 1 000. */
  pollMs?: number;
}

/**
 * The notice watcher the agent config asks for, or undefined when it asks for none. The one
 * place that chooses: a new kind of watcher is a new config setting and a new branch here.
 */
export function noticeWatcherFor(config: Pick<AgentConfig, 'noticeFile'>, deps: NoticeWatcherDeps): NoticeWatcher | undefined {
  if (config.noticeFile !== undefined) return fileNoticeWatcher(config.noticeFile, deps);
  return undefined;
}

/** Watches `path` for a notice file (`{ "terminateAt": ISO }`). */
export function fileNoticeWatcher(path: string, deps: NoticeWatcherDeps): NoticeWatcher {
  return new PollingNoticeWatcher({ ...deps, source: path, read: () => readNoticeFile(path) });
}

/** The `terminateAt` of a notice file, or undefined when absent or invalid. */
export function readNoticeFile(path: string): Date | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (!raw || typeof raw !== 'object') return undefined;
  const at = (raw as Record<string, unknown>).terminateAt;
  if (typeof at !== 'string') return undefined;
  const ms = isoToMs(at);
  return ms === undefined ? undefined : new Date(ms);
}

export interface PollingNoticeWatcherOptions extends NoticeWatcherDeps {
  /** Where notices are read from, for logs. */
  source: string;
  /** The notice now: its termination time, or undefined when there is none. */
  read(): Date | undefined | Promise<Date | undefined>;
}

/** A watcher that reads a source every `pollMs` and reports what is new. */
export class PollingNoticeWatcher implements NoticeWatcher {
  private timer: TimerHandle | undefined;
  private stopped = true;
  /** The last notice reported (epoch ms). */
  private lastMs: number | undefined;

  constructor(private readonly options: PollingNoticeWatcherOptions) {}

  start(onNotice: (terminateAt: Date) => void): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.poll(onNotice);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private async poll(onNotice: (terminateAt: Date) => void): Promise<void> {
    if (this.stopped) return;
    const { clock, logger, source } = this.options;
    let terminateAt: Date | undefined;
    try {
      terminateAt = await this.options.read();
    } catch (err) {
      logger.debug({ source, err: errorMessage(err) }, 'reading termination notices failed');
    }
    if (this.stopped) return;
    if (terminateAt !== undefined && terminateAt.getTime() !== this.lastMs) {
      this.lastMs = terminateAt.getTime();
      onNotice(terminateAt);
    }
    this.timer = clock.schedule(clock.nowMs() + (this.options.pollMs ?? 1_000), () => void this.poll(onNotice));
  }
}

export interface NoticeSenderOptions {
  /** Sends a message to the server; false when not connected. */
  send(msg: AgentMessage): boolean;
  logger: Logger;
}

/** Sends notices to the server, keeping one seen while disconnected until `flush()`. */
export class NoticeSender {
  /** The latest notice not yet sent (ISO). */
  private pending: string | undefined;

  constructor(private readonly options: NoticeSenderOptions) {}

  /** A new notice: sent now if connected, else at the next `flush()`. */
  report(terminateAt: Date): void {
    const iso = terminateAt.toISOString();
    this.options.logger.info({ terminateAt: iso }, 'termination notice seen');
    this.pending = iso;
    this.flush();
  }

  /** Sends the pending notice, if any and connected. */
  flush(): void {
    if (this.pending !== undefined && this.options.send({ type: 'notice', terminateAt: this.pending })) {
      this.options.logger.info({ terminateAt: this.pending }, 'termination notice sent');
      this.pending = undefined;
    }
  }
}
