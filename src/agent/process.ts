/**
 * Child processes of the agent: one-shot commands (health and drain commands) and the
 * supervised workload.
 *
 * Every child is started in its own process group (detached) so that a timeout or a stop reaches
 * the whole tree it started (`sh -c '...'` and what it runs), not just its first process. Every
 * child carries the agent's environment plus what the caller adds (DROVER_INSTANCE_ID at least),
 * which is how the local provider finds processes that left the agent's group.
 */
import { backoffDelayMs } from '../util/backoff.js';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Clock, TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';

export interface CommandResult {
  /** Exit code; null when killed by a signal or never started. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Killed because it ran past its timeout. */
  timedOut: boolean;
  /** Why it could not be started (e.g. ENOENT). */
  error?: string;
  /** The last KiB of its stderr, when captured. */
  stderrTail: string;
}

export interface RunningCommand {
  readonly pid: number | undefined;
  /** Settles when the process exits (never rejects). */
  readonly done: Promise<CommandResult>;
  /** Signals the command's whole process group. */
  kill(signal?: NodeJS.Signals): void;
  /** Moves the time at which it is killed (SIGKILL, whole group) to epoch ms `atMs`. */
  setDeadline(atMs: number): void;
}

export interface RunCommandOptions {
  env: NodeJS.ProcessEnv;
  clock: Clock;
  /** Killed (SIGKILL, whole group) after this long. Absent: no limit. */
  timeoutMs?: number;
  /** Killed (SIGKILL, whole group) at this epoch ms; takes precedence over `timeoutMs`. Movable with `setDeadline`. */
  deadlineMs?: number;
  /** 'inherit': output goes to the agent's stdout/stderr (its log); 'quiet': stdout dropped, stderr kept for diagnostics. */
  output: 'inherit' | 'quiet';
}

const STDERR_TAIL = 1024;

/** How the agent's parts start a one-shot command (`runCommand`; tests may pass a stand-in). */
export type CommandRunner = (argv: readonly string[], options: RunCommandOptions) => RunningCommand;

/** Starts `argv` and reports how it ended. */
export function runCommand(argv: readonly string[], options: RunCommandOptions): RunningCommand {
  const [file, ...args] = argv;
  let child: ChildProcess | undefined;
  let spawnError: string | undefined;
  try {
    child = spawn(file ?? '', args, {
      env: options.env,
      detached: true,
      stdio: options.output === 'inherit' ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'ignore', 'pipe'],
    });
  } catch (err) {
    spawnError = errorMessage(err);
  }
  const proc = child;
  const kill = (signal: NodeJS.Signals = 'SIGTERM'): void => {
    const pid = proc?.pid;
    if (pid === undefined || proc?.exitCode !== null || proc.signalCode !== null) return;
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        proc.kill(signal);
      } catch {
        // already gone
      }
    }
  };
  if (!proc) {
    return {
      pid: undefined,
      kill,
      setDeadline: () => undefined,
      done: Promise.resolve({ code: null, signal: null, timedOut: false, error: spawnError ?? 'not started', stderrTail: '' }),
    };
  }
  let stderrTail = '';
  proc.stderr?.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL);
  });
  let timedOut = false;
  let timer: TimerHandle | undefined;
  let settled = false;
  const setDeadline = (atMs: number): void => {
    if (settled) return;
    timer?.cancel();
    timer = options.clock.schedule(atMs, () => {
      timedOut = true;
      kill('SIGKILL');
    });
  };
  if (options.deadlineMs !== undefined) setDeadline(options.deadlineMs);
  else if (options.timeoutMs !== undefined) setDeadline(options.clock.nowMs() + options.timeoutMs);
  const done = new Promise<CommandResult>((resolve) => {
    const finish = (result: Omit<CommandResult, 'timedOut' | 'stderrTail'>): void => {
      if (settled) return;
      settled = true;
      timer?.cancel();
      resolve({ ...result, timedOut, stderrTail: stderrTail.trim() });
    };
    proc.once('error', (err) => finish({ code: null, signal: null, error: err.message }));
    proc.once('exit', (code, signal) => finish({ code, signal }));
  });
  return { pid: proc.pid, kill, setDeadline, done };
}

/** Human summary of how a command ended, for logs. */
export function describeResult(result: CommandResult): string {
  if (result.error) return `could not start: ${result.error}`;
  if (result.timedOut) return 'timed out';
  if (result.signal) return `killed by ${result.signal}`;
  return `exit code ${String(result.code)}`;
}

export interface SupervisorOptions {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  clock: Clock;
  logger: Logger;
  /** First restart delay after an exit; doubles per consecutive quick exit. */
  restartInitialMs: number;
  restartMaxMs: number;
  /** A run at least this long resets the restart delay. */
  stableAfterMs: number;
  /** Time between SIGTERM and SIGKILL at stop. */
  stopGraceMs: number;
  random: () => number;
}

/**
 * Keeps the workload running: starts it, restarts it with exponential backoff (and jitter)
 * whenever it exits, and stops it on request (SIGTERM to its group, SIGKILL after the grace).
 */
export class Supervisor {
  private current: RunningCommand | undefined;
  private restartTimer: TimerHandle | undefined;
  private quickExits = 0;
  private stopped = false;
  private alive = false;

  constructor(private readonly options: SupervisorOptions) {}

  /** Whether the workload's process is alive now. */
  get running(): boolean {
    return this.alive;
  }

  start(): void {
    if (this.stopped || this.current) return;
    const { clock, logger } = this.options;
    const startedAt = clock.nowMs();
    const run = runCommand(this.options.argv, { env: this.options.env, clock, output: 'inherit' });
    this.current = run;
    this.alive = run.pid !== undefined;
    if (this.alive) logger.info({ pid: run.pid, command: this.options.argv[0] }, 'workload started');
    void run.done.then((result) => {
      this.alive = false;
      this.current = undefined;
      if (this.stopped) return;
      if (clock.nowMs() - startedAt >= this.options.stableAfterMs) this.quickExits = 0;
      const delayMs = backoffDelayMs({ initialMs: this.options.restartInitialMs, maxMs: this.options.restartMaxMs, jitter: 0.5, mode: 'below' }, this.quickExits, this.options.random);
      this.quickExits = Math.min(this.quickExits + 1, 30);
      logger.warn({ result: describeResult(result), code: result.code, signal: result.signal, delayMs }, 'workload exited; restarting');
      this.restartTimer = clock.schedule(clock.nowMs() + delayMs, () => {
        this.restartTimer = undefined;
        this.start();
      });
    });
  }

  /** Stops the workload and waits for it to exit. No restart follows. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.restartTimer?.cancel();
    this.restartTimer = undefined;
    const run = this.current;
    if (!run) return;
    run.kill('SIGTERM');
    let finished = false;
    const done = run.done.then(() => {
      finished = true;
    });
    await Promise.race([done, this.options.clock.sleep(this.options.stopGraceMs)]);
    if (!finished) {
      this.options.logger.warn({ graceMs: this.options.stopGraceMs }, 'workload did not stop in time; killing');
      run.kill('SIGKILL');
      await done;
    }
    this.options.logger.info({}, 'workload stopped');
  }
}
