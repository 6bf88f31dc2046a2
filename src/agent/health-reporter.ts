/**
 * Health reports: the agent's "this instance is fine" to the server, which judges silence.
 *
 * Contracts:
 * - `start(intervalMs)` (the agent calls it at each welcome, with the interval the welcome set)
 *   begins a new series of rounds and retires the previous one. A round judges health and sends
 *   `health` (`at`: now, `workload`: 'running' or 'none') only if the instance is healthy; the
 *   first round runs at once, each next one an interval after the previous one began (at once
 *   when a round took longer).
 * - Healthy means: the workload (if one is supervised) is running, and the `healthCommand` (if
 *   configured) exits 0 within one interval (it is killed then). While unhealthy nothing is
 *   sent and nothing else is done: the connection is kept. Each change between healthy and
 *   unhealthy is logged once.
 * - `stop()` (the connection is lost, the agent stops) ends the rounds and SIGKILLs a running
 *   health command; nothing is sent after it until the next `start()`.
 */
import type { Clock, TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { describeResult, runCommand, type CommandRunner, type RunningCommand } from './process.js';
import type { AgentMessage } from './protocol.js';

export interface HealthReporterOptions {
  /** Sends a message to the server; false when not connected (the report is then dropped). */
  send(msg: AgentMessage): boolean;
  clock: Clock;
  logger: Logger;
  /** The supervised workload, when there is one: health requires it to be running. */
  workload: { readonly running: boolean } | undefined;
  /** Run each round; health requires exit 0. */
  healthCommand: readonly string[] | undefined;
  /** The health command's environment. */
  env: NodeJS.ProcessEnv;
  /** Default: `runCommand` (process.ts). */
  runCommand?: CommandRunner;
}

export class HealthReporter {
  private timer: TimerHandle | undefined;
  private check: RunningCommand | undefined;
  /** As last judged; undefined before the first round. */
  private healthy: boolean | undefined;
  /** Identifies the current series of rounds; start() and stop() retire the old one. */
  private series = 0;
  private intervalMs = 0;

  constructor(private readonly options: HealthReporterOptions) {}

  /** Begins reporting every `intervalMs`, at once first. */
  start(intervalMs: number): void {
    this.timer?.cancel();
    this.intervalMs = intervalMs;
    void this.round(++this.series);
  }

  /** Stops reporting until the next start(); kills a running health command. */
  stop(): void {
    this.series++;
    this.timer?.cancel();
    this.timer = undefined;
    this.check?.kill('SIGKILL');
  }

  /** One round: judge health, report if healthy, schedule the next round one interval after this one began. */
  private async round(series: number): Promise<void> {
    const { clock, logger } = this.options;
    const current = (): boolean => series === this.series;
    if (!current()) return;
    const startedMs = clock.nowMs();
    let problem: string | undefined;
    try {
      problem = await this.problem();
    } catch (err) {
      problem = `health check failed: ${errorMessage(err)}`;
    }
    if (!current()) return;
    if (problem === undefined) {
      if (this.healthy === false) logger.info({}, 'instance healthy again; reporting health');
      this.healthy = true;
      this.options.send({ type: 'health', at: clock.now().toISOString(), workload: this.options.workload ? 'running' : 'none' });
    } else {
      if (this.healthy !== false) logger.warn({ problem }, 'instance unhealthy; not reporting health');
      this.healthy = false;
    }
    this.timer = clock.schedule(Math.max(startedMs + this.intervalMs, clock.nowMs()), () => {
      void this.round(series);
    });
  }

  /** Undefined when healthy, else what is wrong. */
  private async problem(): Promise<string | undefined> {
    const { workload, healthCommand } = this.options;
    if (workload && !workload.running) return 'workload not running';
    if (!healthCommand) return undefined;
    const run = this.options.runCommand ?? runCommand;
    const check = run(healthCommand, { env: this.options.env, clock: this.options.clock, timeoutMs: this.intervalMs, output: 'quiet' });
    this.check = check;
    const result = await check.done;
    if (this.check === check) this.check = undefined;
    if (result.code === 0) return undefined;
    return `health command ${describeResult(result)}${result.stderrTail ? `: ${result.stderrTail}` : ''}`;
  }
}
