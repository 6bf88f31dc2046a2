/**
 * Termination notices: a cloud announces that it will take the instance (a spot interruption, a
 * scheduled retirement); the agent passes the time on to the server, which starts a replacement.
 * Rebalance recommendations: a cloud says the instance is at higher risk of being taken (EC2's
 * rebalance recommendation, usually minutes before any interruption notice); the agent passes
 * them on too, as `rebalance`.
 *
 * A `NoticeWatcher` finds notices; where it looks is its own business. One polls a local file
 * (`noticeFile`, which the local provider writes like instance metadata; it has no
 * recommendations); the EC2 watcher polls IMDSv2 (imds.ts). `noticeWatcherFor` chooses from the
 * agent config's `metadata`. The `NoticeSender` turns what any watcher found into messages.
 * Hetzner Cloud announces nothing of the kind (no spot market; its metadata service has no
 * notices): with `metadata: hetzner` there is no watcher.
 *
 * Contracts:
 * - Watchers. `start(onNotice, onRebalance?)` begins watching; each is called once per distinct
 *   notice or recommendation (one equal to the last reported of its kind is not reported again),
 *   never after `stop()`. A watcher that has no recommendations never calls `onRebalance`.
 * - Polling. A `PollingNoticeWatcher` reads at once and then `pollMs` after each read ends; a
 *   read that fails (throws or rejects) is logged and counts as nothing seen.
 * - File. The notice file holds `{ "terminateAt": ISO }`; a missing, unreadable or invalid file
 *   is no notice. The local file watcher polls every second by default.
 * - EC2. `spot/instance-action` (a 404 is none; `{ action, time }`, whatever the action —
 *   terminate, stop or hibernate all take the instance out of service) is read every second: a
 *   spot interruption gives two minutes, and every second of them is a second less for the
 *   replacement to boot and the drain to run. AWS suggests every 5 s; one local HTTP request a
 *   second to a link-local service is nothing to the instance. `events/recommendations/rebalance`
 *   (`{ noticeTime }`) is read every 5 s: it comes well before any interruption, so seconds do
 *   not matter. A read that fails is logged and retried at the next poll.
 * - Hetzner. No watcher: `noticeWatcherFor` gives undefined for `metadata: hetzner` (whatever
 *   else the config holds; the config schema refuses a `noticeFile` with it), so the agent polls
 *   nothing and never sends `notice` or `rebalance`. A Hetzner server that goes away is found
 *   as any instance is that stops reporting health or leaves its provider's list.
 * - Sending. Each reported notice is sent once as `notice` (`terminateAt` as ISO), and each
 *   recommendation once as `rebalance` (`noticeTime` as ISO): at once when connected, else by
 *   `flush()` (the agent calls it at each welcome). Only the latest unsent one of each kind is kept.
 */
import { readFileSync } from 'node:fs';
import type { Clock, TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { AgentConfig } from './config.js';
import { IMDS_REBALANCE_PATH, IMDS_SPOT_ACTION_PATH, ImdsClient, imdsEndpoint } from './imds.js';
import { isoToMs, type AgentMessage } from './protocol.js';

export interface NoticeWatcher {
  /**
   * Begins watching; `onNotice` gets each distinct termination time once, `onRebalance` each
   * distinct rebalance recommendation (the time the cloud issued it) once.
   */
  start(onNotice: (terminateAt: Date) => void, onRebalance?: (noticeTime: Date) => void): void;
  /** Stops watching: no more calls. */
  stop(): void;
}

/** What a notice watcher may use. */
export interface NoticeWatcherDeps {
  clock: Clock;
  logger: Logger;
  /** How often a polling watcher reads termination notices. Default 1 000. */
  pollMs?: number;
  /** How often the EC2 watcher reads rebalance recommendations. Default 5 000. */
  rebalancePollMs?: number;
  /** The IMDS client for `metadata: ec2` (default: one for the config's endpoint). */
  imds?: ImdsClient;
}

/** What `noticeWatcherFor` reads of the agent config. */
export type NoticeWatcherConfig = Pick<AgentConfig, 'noticeFile' | 'metadata' | 'imds'>;

/**
 * The notice watcher the agent config asks for, or undefined when it asks for none. The one
 * place that chooses: a new kind of watcher is a new `metadata` value and a new branch here.
 */
export function noticeWatcherFor(config: Partial<NoticeWatcherConfig>, deps: NoticeWatcherDeps): NoticeWatcher | undefined {
  if (config.metadata === 'hetzner') return undefined;
  if (config.metadata === 'ec2') return ec2NoticeWatcher(deps.imds ?? new ImdsClient({ endpoint: imdsEndpoint(config.imds?.endpoint), clock: deps.clock }), deps);
  if (config.noticeFile !== undefined) return fileNoticeWatcher(config.noticeFile, deps);
  return undefined;
}

/**
 * Watches EC2 instance metadata: spot interruption notices (every `pollMs`, default 1 s) and
 * rebalance recommendations (every `rebalancePollMs`, default 5 s).
 */
export function ec2NoticeWatcher(imds: ImdsClient, deps: NoticeWatcherDeps): NoticeWatcher {
  const interruptions = new PollingNoticeWatcher({ ...deps, source: `${imds.endpoint}${IMDS_SPOT_ACTION_PATH}`, read: async () => (await imds.spotInstanceAction())?.time });
  const recommendations = new PollingNoticeWatcher({
    ...deps,
    pollMs: deps.rebalancePollMs ?? 5_000,
    source: `${imds.endpoint}${IMDS_REBALANCE_PATH}`,
    read: () => imds.rebalanceRecommendation(),
  });
  return {
    start(onNotice, onRebalance) {
      interruptions.start(onNotice);
      if (onRebalance) recommendations.start(onRebalance);
    },
    stop() {
      interruptions.stop();
      recommendations.stop();
    },
  };
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

/** Sends notices and recommendations to the server, keeping the latest of each seen while disconnected until `flush()`. */
export class NoticeSender {
  /** The latest notice not yet sent (ISO). */
  private pending: string | undefined;
  /** The latest rebalance recommendation not yet sent (ISO). */
  private pendingRebalance: string | undefined;

  constructor(private readonly options: NoticeSenderOptions) {}

  /** A new notice: sent now if connected, else at the next `flush()`. */
  report(terminateAt: Date): void {
    const iso = terminateAt.toISOString();
    this.options.logger.info({ terminateAt: iso }, 'termination notice seen');
    this.pending = iso;
    this.flush();
  }

  /** A new rebalance recommendation: sent now if connected, else at the next `flush()`. */
  reportRebalance(noticeTime: Date): void {
    const iso = noticeTime.toISOString();
    this.options.logger.info({ noticeTime: iso }, 'rebalance recommendation seen');
    this.pendingRebalance = iso;
    this.flush();
  }

  /** Sends what is pending, if anything and connected: the notice first, it is the more urgent. */
  flush(): void {
    if (this.pending !== undefined && this.options.send({ type: 'notice', terminateAt: this.pending })) {
      this.options.logger.info({ terminateAt: this.pending }, 'termination notice sent');
      this.pending = undefined;
    }
    if (this.pendingRebalance !== undefined && this.options.send({ type: 'rebalance', noticeTime: this.pendingRebalance })) {
      this.options.logger.info({ noticeTime: this.pendingRebalance }, 'rebalance recommendation sent');
      this.pendingRebalance = undefined;
    }
  }
}
