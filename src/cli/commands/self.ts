/**
 * `drover self ...`: run inside an instance (by its workload, drain command or health command),
 * talks to the instance's agent over its local socket (src/agent/self-socket.ts), found in
 * DROVER_AGENT_SOCKET or given with `--socket`.
 *
 * Exit codes: 0 the request was granted; 1 the server refused it (or the agent could not get an
 * answer from it: not connected, no answer in time); 2 bad command line; 3 the agent's socket
 * cannot be reached (or the agent did not answer).
 */
import { createConnection } from 'node:net';
import { SELF_SOCKET_ENV, type SelfResponse } from '../../agent/self-socket.js';
import { parseDuration } from '../../config/duration.js';
import { CliError, EXIT } from '../client.js';
import { json, parseOutput } from '../format.js';

/** A request as the command line gives it (durations as text: the agent parses them). */
export type SelfCommand = { op: 'protect'; for: string } | { op: 'unprotect' } | { op: 'extend'; by: string } | { op: 'ready' } | { op: 'status' };

export interface SelfOptions {
  socket?: string;
  output?: string;
  /** How long to wait for the agent's answer. Default 15 s (the agent waits 10 s for the server). */
  timeoutMs?: number;
}

type Print = (text: string) => void;

const DEFAULT_TIMEOUT_MS = 15_000;
const MAX_ANSWER = 64 * 1024;

export async function selfCommand(command: SelfCommand, opts: SelfOptions, print: Print): Promise<void> {
  const output = parseOutputOption(opts.output);
  if (command.op === 'protect') checkDuration('--for', command.for);
  if (command.op === 'extend') checkDuration('<duration>', command.by);
  const path = opts.socket ?? process.env[SELF_SOCKET_ENV];
  if (!path) throw new CliError(`no agent socket: ${SELF_SOCKET_ENV} is not set (run this inside an instance, or pass --socket <path>)`, EXIT.usage);
  const answer = await askAgent(path, command, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  if (output === 'json') print(json(answer));
  else if (answer.ok) print(render(command.op, answer));
  if (!answer.ok) throw new CliError(answer.message || `${command.op} refused`, EXIT.error);
}

function parseOutputOption(value: string | undefined): ReturnType<typeof parseOutput> {
  try {
    return parseOutput(value);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.usage);
  }
}

function checkDuration(name: string, text: string): void {
  const ms = parseDuration(text);
  if (ms === null || ms <= 0) throw new CliError(`${name}: not a duration: ${text} (e.g. 90s, 30m, 2h)`, EXIT.usage);
}

function render(op: SelfCommand['op'], answer: SelfResponse): string {
  if (op === 'status') {
    const rows: [string, string][] = [
      ['connected', answer.connected ? 'yes' : 'no'],
      ['draining', answer.draining ? `yes (${answer.drainReason ?? 'unknown reason'})` : 'no'],
    ];
    if (answer.drainDeadline) rows.push(['drain deadline', answer.drainDeadline]);
    rows.push(['protected until', answer.protectedUntil === undefined ? 'unknown' : (answer.protectedUntil ?? 'not protected')]);
    return rows.map(([k, v]) => `${`${k}:`.padEnd(17)}${v}`).join('\n');
  }
  const lines = answer.message ? [answer.message] : [`${op}: ok`];
  if (typeof answer.protectedUntil === 'string') lines.push(`protected until: ${answer.protectedUntil}`);
  if (answer.drainDeadline) lines.push(`drain deadline:  ${answer.drainDeadline}`);
  return lines.join('\n');
}

/** Sends one request line and reads one answer line. */
function askAgent(path: string, command: SelfCommand, timeoutMs: number): Promise<SelfResponse> {
  return new Promise<SelfResponse>((resolve, reject) => {
    const socket = createConnection(path);
    socket.setEncoding('utf8');
    let buffer = '';
    let settled = false;
    const finish = (result: SelfResponse | CliError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (result instanceof CliError) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(new CliError(`no answer from the agent at ${path} within ${Math.round(timeoutMs / 1000)}s`, EXIT.unreachable)), timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify(command)}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline >= 0) finish(parseAnswer(buffer.slice(0, newline), path));
      else if (buffer.length > MAX_ANSWER) finish(new CliError(`the agent at ${path} sent an answer that is too long`, EXIT.error));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      finish(new CliError(`cannot reach the agent's socket at ${path}: ${err.code ?? err.message}`, EXIT.unreachable));
    });
    socket.on('close', () => finish(new CliError(`the agent at ${path} closed the connection without answering`, EXIT.unreachable)));
  });
}

function parseAnswer(line: string, path: string): SelfResponse | CliError {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    raw = undefined;
  }
  if (!raw || typeof raw !== 'object' || typeof (raw as Record<string, unknown>).ok !== 'boolean') {
    return new CliError(`the agent at ${path} sent an answer that is not one`, EXIT.error);
  }
  const answer = raw as Record<string, unknown>;
  return { ...(answer as Partial<SelfResponse>), ok: answer.ok as boolean, message: typeof answer.message === 'string' ? answer.message : '' };
}
