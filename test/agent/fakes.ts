/**
 * Stand-ins for testing the agent's parts alone: a `send` whose connection the test opens and
 * closes, and commands whose exit the test decides. Time comes from a ManualClock in the tests.
 */
import type { CommandResult, RunCommandOptions, RunningCommand } from '../../src/agent/process.js';
import type { AgentMessage } from '../../src/agent/protocol.js';

/** A connection as the parts see it: `send` delivers (and records) only while `connected`. */
export class FakeLink {
  connected = true;
  readonly sent: AgentMessage[] = [];
  readonly send = (msg: AgentMessage): boolean => {
    if (!this.connected) return false;
    this.sent.push(msg);
    return true;
  };
  of<T extends AgentMessage['type']>(type: T): Extract<AgentMessage, { type: T }>[] {
    return this.sent.filter((m): m is Extract<AgentMessage, { type: T }> => m.type === type);
  }
}

/** A command that runs until the test calls `exit`. Kills and deadline moves are recorded, not acted on. */
export class FakeCommand implements RunningCommand {
  readonly pid = 4242;
  readonly done: Promise<CommandResult>;
  readonly kills: NodeJS.Signals[] = [];
  /** Every kill time set: the first from the options, then each `setDeadline`. */
  readonly deadlines: number[] = [];
  private finish: (result: CommandResult) => void = () => undefined;

  constructor(
    readonly argv: readonly string[],
    readonly options: RunCommandOptions,
  ) {
    this.done = new Promise((resolve) => {
      this.finish = resolve;
    });
    if (options.deadlineMs !== undefined) this.deadlines.push(options.deadlineMs);
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.kills.push(signal);
  }

  setDeadline(atMs: number): void {
    this.deadlines.push(atMs);
  }

  exit(code: number | null, extra: Partial<CommandResult> = {}): void {
    this.finish({ code, signal: null, timedOut: false, stderrTail: '', ...extra });
  }
}

/** Starts FakeCommands and keeps them, in order, for the test to end. */
export class FakeRunner {
  readonly runs: FakeCommand[] = [];
  readonly run = (argv: readonly string[], options: RunCommandOptions): RunningCommand => {
    const command = new FakeCommand(argv, options);
    this.runs.push(command);
    return command;
  };
  get last(): FakeCommand {
    const command = this.runs[this.runs.length - 1];
    if (!command) throw new Error('no command was run');
    return command;
  }
}
