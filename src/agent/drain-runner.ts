/**
 * Drains: what the agent does when the server asks it to finish its work before a deadline.
 *
 * Contracts:
 * - Drain. On `drain(reason, deadline)`, `drainCommand` runs (env DROVER_DRAIN_REASON and
 *   DROVER_DRAIN_DEADLINE added to the agent's; killed, whole group, at the deadline in force,
 *   but never sooner than 1 s after it starts); exit 0 sends `drainAck`. An ack that cannot be
 *   sent (not connected) is sent by `sendPendingAck()` (the agent calls it at each welcome); a
 *   repeated `drain` after success sends the ack again without re-running the command, one
 *   while the command runs only updates reason and deadline. A failing command is logged and
 *   not acknowledged; a repeated `drain` runs it again. Without a `drainCommand` the drain is
 *   NOT acknowledged: the operator (or the drain deadline) ends it.
 * - Drain extension. While the drain command runs and the deadline is within
 *   max(2 × interval, 30 s), the runner asks for `extend` by max(5 × interval, 60 s) (through
 *   `requestExtension`) and takes the deadline from the server's answer (a new deadline re-arms
 *   the check; an unanswered request is retried after min(interval, 5 s)). The server caps
 *   extensions: an answer that does not move the deadline (or a refusal) is logged once and the
 *   runner stops asking for this run of the command. The command is killed at the deadline in
 *   force, which `takeDeadline` (any server `result` naming one) or a repeated `drain` moves.
 * - Drain cancelled. `cancel()` SIGTERMs the running drain command's process group (SIGKILL
 *   after `cancelGraceMs`), forgets the drain and any pending ack: no `drainAck` follows.
 * - Stop. After `stop()` nothing is sent and no extension is asked for; `killCommand()` then
 *   SIGTERMs a drain command still running (the agent does this after its goodbye).
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import type { Logger } from '../logging/index.js';
import { describeResult, runCommand, type CommandResult, type CommandRunner, type RunningCommand } from './process.js';
import { isoToMs, type AgentMessage, type ServerResult } from './protocol.js';

/** A drain command gets at least this long, even when the deadline is (nearly) past. */
const MIN_DRAIN_RUN_MS = 1_000;
/** Drain extension: asked for when the deadline is this close (at least), by this much (at least). */
const EXTEND_WHEN_WITHIN_MIN_MS = 30_000;
const EXTEND_BY_MIN_MS = 60_000;
/** Drain extension: retry delay after a request that got no answer (at most). */
const EXTEND_RETRY_MAX_MS = 5_000;

export interface DrainRunnerOptions {
  drainCommand: readonly string[] | undefined;
  /** The agent's environment for children; the drain's variables are added to it. */
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: Logger;
  /** Sends a message to the server; false when not connected. */
  send(msg: AgentMessage): boolean;
  /** Asks the server to extend the drain by `byMs`: its result, or (a string) why there is none. */
  requestExtension(byMs: number): Promise<ServerResult | string>;
  /** The health interval in force (extensions scale with it). */
  intervalMs(): number;
  /** A cancelled drain's command: SIGTERM → SIGKILL grace. */
  cancelGraceMs: number;
  /** Default: `runCommand` (process.ts). */
  runCommand?: CommandRunner;
}

/** The drain in progress, as the self-service `status` reports it. */
export interface DrainStatus {
  reason: string;
  /** As the server last set it (ISO). */
  deadline: string;
}

interface Drain extends DrainStatus {
  /** `deadline` in epoch ms; undefined when it does not parse. */
  deadlineMs: number | undefined;
  /** 'none': there is no drain command to run. */
  state: 'running' | 'acked' | 'failed' | 'none';
  command?: RunningCommand;
  /** The next automatic extension check. */
  extendTimer?: TimerHandle;
  /** An automatic extension request is waiting for its answer. */
  extending: boolean;
  /** The server would not extend further (or refused): no more automatic requests. */
  extendStopped: boolean;
}

export class DrainRunner {
  private drain: Drain | undefined;
  private ackPending = false;
  private stopped = false;

  constructor(private readonly options: DrainRunnerOptions) {}

  /** The drain in progress (from the server's `drain` until `cancel()`), if any. */
  get status(): DrainStatus | undefined {
    return this.drain ? { reason: this.drain.reason, deadline: this.drain.deadline } : undefined;
  }

  /** The server asks for a drain (first time or again). */
  start(reason: string, deadline: string): void {
    if (this.stopped) return;
    const log = this.options.logger;
    log.info({ reason, deadline }, 'drain requested');
    let drain = this.drain;
    if (drain) {
      drain.reason = reason;
      this.takeDeadline(deadline);
    } else {
      drain = { reason, deadline, deadlineMs: isoToMs(deadline), state: 'none', extending: false, extendStopped: false };
      this.drain = drain;
    }
    const drainCommand = this.options.drainCommand;
    if (!drainCommand) {
      log.warn({}, 'no drainCommand configured; not acknowledging (the operator or the deadline ends the drain)');
      return;
    }
    if (drain.state === 'running') {
      log.debug({}, 'drain command already running');
      return;
    }
    if (drain.state === 'acked') {
      this.sendAck();
      return;
    }
    this.runCommand(drain, drainCommand, reason, deadline);
  }

  /** The server cancelled the drain: the command is stopped and no ack follows. */
  cancel(): void {
    const drain = this.drain;
    this.drain = undefined;
    this.ackPending = false;
    const command = drain?.command;
    this.options.logger.info({ reason: drain?.reason, pid: command?.pid }, 'drain cancelled by the server');
    if (!drain) return;
    drain.extendTimer?.cancel();
    drain.extendTimer = undefined;
    if (!command) return;
    command.kill('SIGTERM');
    const { clock } = this.options;
    const force = clock.schedule(clock.nowMs() + this.options.cancelGraceMs, () => command.kill('SIGKILL'));
    void command.done.then(() => force.cancel());
  }

  /** Takes a deadline the server set: moves the drain command's kill time and the extension check. */
  takeDeadline(deadline: string): void {
    const drain = this.drain;
    const ms = isoToMs(deadline);
    if (!drain || ms === undefined || ms === drain.deadlineMs) return;
    drain.deadline = deadline;
    drain.deadlineMs = ms;
    this.options.logger.info({ deadline }, 'drain deadline changed');
    drain.command?.setDeadline(this.killAt(ms));
    this.scheduleExtendCheck(drain);
  }

  /** Sends an ack that could not be sent before (call when connected again). */
  sendPendingAck(): void {
    if (this.ackPending) this.sendAck();
  }

  /** No more messages or extension requests. */
  stop(): void {
    this.stopped = true;
    this.drain?.extendTimer?.cancel();
  }

  /** SIGTERMs the drain command's group, if one runs. */
  killCommand(): void {
    this.drain?.command?.kill('SIGTERM');
  }

  /** Runs `argv` for `drain`, with the drain as the server just sent it in its environment. */
  private runCommand(drain: Drain, argv: readonly string[], reason: string, deadline: string): void {
    const run = this.options.runCommand ?? runCommand;
    const command = run(argv, {
      env: { ...this.options.env, DROVER_DRAIN_REASON: reason, DROVER_DRAIN_DEADLINE: deadline },
      clock: this.options.clock,
      output: 'inherit',
      ...(drain.deadlineMs !== undefined ? { deadlineMs: this.killAt(drain.deadlineMs) } : {}),
    });
    drain.state = 'running';
    drain.command = command;
    drain.extendStopped = false;
    this.options.logger.info({ pid: command.pid }, 'drain command started');
    this.scheduleExtendCheck(drain);
    void command.done.then((result) => this.commandEnded(drain, result));
  }

  private commandEnded(drain: Drain, result: CommandResult): void {
    const log = this.options.logger;
    drain.command = undefined;
    drain.extendTimer?.cancel();
    drain.extendTimer = undefined;
    if (this.stopped) return;
    if (this.drain !== drain) {
      log.info({ result: describeResult(result) }, 'cancelled drain command ended');
      return;
    }
    if (result.code === 0) {
      drain.state = 'acked';
      log.info({}, 'drain command succeeded');
      this.sendAck();
    } else {
      drain.state = 'failed';
      log.error({ result: describeResult(result), code: result.code, signal: result.signal }, 'drain command failed; drain not acknowledged');
    }
  }

  private sendAck(): void {
    if (this.options.send({ type: 'drainAck' })) {
      this.ackPending = false;
      this.options.logger.info({}, 'drain acknowledged');
    } else {
      this.ackPending = true;
    }
  }

  /** When the drain command is killed for a deadline of `deadlineMs`. */
  private killAt(deadlineMs: number): number {
    return Math.max(deadlineMs, this.options.clock.nowMs() + MIN_DRAIN_RUN_MS);
  }

  /** Extensions are asked for when the deadline is this close. */
  private extendWithinMs(): number {
    return Math.max(2 * this.options.intervalMs(), EXTEND_WHEN_WITHIN_MIN_MS);
  }

  /** Arms the automatic extension check (at `atMs`, else when the deadline comes within range). */
  private scheduleExtendCheck(drain: Drain, atMs?: number): void {
    drain.extendTimer?.cancel();
    drain.extendTimer = undefined;
    if (this.stopped || this.drain !== drain || drain.state !== 'running' || drain.extending || drain.extendStopped || drain.deadlineMs === undefined) return;
    const at = atMs ?? drain.deadlineMs - this.extendWithinMs();
    drain.extendTimer = this.options.clock.schedule(at, () => {
      drain.extendTimer = undefined;
      void this.autoExtend(drain);
    });
  }

  private async autoExtend(drain: Drain): Promise<void> {
    const { clock, logger } = this.options;
    const active = (): boolean => !this.stopped && this.drain === drain && drain.state === 'running' && !drain.extendStopped;
    const before = drain.deadlineMs;
    if (!active() || drain.extending || before === undefined) return;
    if (before - clock.nowMs() > this.extendWithinMs()) {
      this.scheduleExtendCheck(drain);
      return;
    }
    const byMs = Math.max(5 * this.options.intervalMs(), EXTEND_BY_MIN_MS);
    drain.extending = true;
    logger.info({ byMs, deadline: drain.deadline }, 'drain command still running near the deadline; asking for more time');
    const answer = await this.options.requestExtension(byMs);
    drain.extending = false;
    if (!active()) return;
    if (typeof answer === 'string') {
      const retryMs = Math.min(this.options.intervalMs(), EXTEND_RETRY_MAX_MS);
      logger.warn({ problem: answer, retryMs }, 'drain extension not answered; retrying');
      this.scheduleExtendCheck(drain, clock.nowMs() + retryMs);
      return;
    }
    if (!answer.ok) {
      drain.extendStopped = true;
      logger.warn({ message: answer.message, deadline: drain.deadline }, 'drain extension refused by the server; not asking again');
      return;
    }
    const after = answer.drainDeadline === undefined ? undefined : isoToMs(answer.drainDeadline);
    if (after === undefined || after <= before) {
      drain.extendStopped = true;
      logger.warn({ deadline: drain.deadline }, 'drain deadline at its limit; not asking again (the drain command is killed at the deadline)');
      return;
    }
    this.scheduleExtendCheck(drain);
  }
}
