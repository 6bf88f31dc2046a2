/**
 * Answers the self-service socket's requests (self-socket.ts): protect, unprotect, extend and
 * ready (the launch hook's continue) go to the server; status is answered from what the agent knows. The drain runner's automatic
 * extensions go through the same `forward`.
 *
 * Contracts:
 * - Forwarding. protect/unprotect/extend are sent with a fresh requestId and answered with the
 *   server's `result` for that id. Not connected → an immediate `ok:false`; no result within
 *   `timeoutMs`, or the connection lost first (`failAll`) → `ok:false` with the reason.
 * - Results. Any `result` (`onResult`) updates the known protection (`protectedUntil`), whoever
 *   asked; a result for no waiting request (unknown, or answered too late) is ignored.
 * - Status. Answered locally: connected or not, draining (reason, deadline) or not, and the
 *   protection as the server last reported it (none reported yet: not mentioned).
 * - Stop. `stop()` answers every waiting request `ok:false` ("the agent is stopping"), and
 *   every later one at once.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/index.js';
import { formatDuration } from '../config/duration.js';
import type { Logger } from '../logging/index.js';
import type { DrainStatus } from './drain-runner.js';
import { isoToMs, type AgentMessage, type ServerResult } from './protocol.js';
import type { SelfRequest, SelfResponse } from './self-socket.js';

/** Agent messages that carry a requestId and are answered by a `result`, without the id. */
export type Forwardable = { type: 'protect'; forMs: number } | { type: 'unprotect' } | { type: 'extend'; byMs: number } | { type: 'launchHook'; result: 'continue' | 'abandon' };

/** The server's result, or (a string) why there is none. */
export type ForwardAnswer = ServerResult | string;

export const NOT_CONNECTED = 'not connected to the Drover server';
export const AGENT_STOPPING = 'the agent is stopping';

export interface SelfForwarderOptions {
  /** Sends a message to the server; false when not connected. */
  send(msg: AgentMessage): boolean;
  clock: Clock;
  logger: Logger;
  /** How long a forwarded request waits for the server's result. */
  timeoutMs: number;
  /** For `status`: whether the agent is connected (welcomed). */
  isConnected(): boolean;
  /** For `status`: the drain in progress, if any. */
  drainStatus(): DrainStatus | undefined;
}

export class SelfForwarder {
  /** Forwarded requests waiting for the server's `result`, by requestId. */
  private readonly pending = new Map<string, (answer: ForwardAnswer) => void>();
  /** The protection as the server last reported it: ISO, null (none), or undefined (unknown). */
  private protectedUntil: string | null | undefined;
  private stopped = false;

  constructor(private readonly options: SelfForwarderOptions) {}

  /** Answers one self-service request (self-socket.ts's `handle`). */
  async handle(req: SelfRequest): Promise<SelfResponse> {
    if (req.op === 'status') return this.status();
    const msg: Forwardable =
      req.op === 'protect' ? { type: 'protect', forMs: req.forMs } : req.op === 'extend' ? { type: 'extend', byMs: req.byMs } : req.op === 'ready' ? { type: 'launchHook', result: 'continue' } : { type: 'unprotect' };
    const answer = await this.forward(msg);
    const log = this.options.logger;
    if (typeof answer === 'string') {
      log.warn({ op: req.op, problem: answer }, 'self-service request not answered');
      return { ok: false, message: answer };
    }
    log.info({ op: req.op, ok: answer.ok, message: answer.message }, 'self-service request answered');
    return {
      ok: answer.ok,
      message: answer.message,
      ...(answer.drainDeadline !== undefined ? { drainDeadline: answer.drainDeadline } : {}),
      ...(answer.protectedUntil !== undefined ? { protectedUntil: answer.protectedUntil } : {}),
    };
  }

  /** Sends `msg` with a fresh requestId; resolves with the server's result, or why there is none. */
  forward(msg: Forwardable): Promise<ForwardAnswer> {
    if (this.stopped) return Promise.resolve(AGENT_STOPPING);
    const requestId = randomUUID();
    if (!this.options.send({ ...msg, requestId })) return Promise.resolve(NOT_CONNECTED);
    const { clock, timeoutMs } = this.options;
    return new Promise((resolve) => {
      const timer = clock.schedule(clock.nowMs() + timeoutMs, () => {
        this.pending.delete(requestId);
        resolve(`no answer from the server within ${formatDuration(timeoutMs)}`);
      });
      this.pending.set(requestId, (answer) => {
        timer.cancel();
        this.pending.delete(requestId);
        resolve(answer);
      });
    });
  }

  /** A `result` from the server. */
  onResult(msg: ServerResult): void {
    if (msg.protectedUntil !== undefined) this.protectedUntil = msg.protectedUntil;
    const settle = this.pending.get(msg.requestId);
    if (!settle) {
      this.options.logger.debug({ requestId: msg.requestId }, 'result for an unknown or expired request');
      return;
    }
    settle(msg);
  }

  /** Answers every waiting request with `reason` (e.g. the connection was lost). */
  failAll(reason: string): void {
    for (const settle of [...this.pending.values()]) settle(reason);
  }

  /** Answers waiting and later requests: the agent is stopping. */
  stop(): void {
    this.stopped = true;
    this.failAll(AGENT_STOPPING);
  }

  private status(): SelfResponse {
    const connected = this.options.isConnected();
    const drain = this.options.drainStatus();
    const parts = [connected ? 'connected to the Drover server' : NOT_CONNECTED];
    parts.push(drain ? `draining (${drain.reason}) until ${drain.deadline}` : 'not draining');
    const until = this.protectedUntil;
    if (until === null) parts.push('not protected');
    else if (until !== undefined) parts.push(((isoToMs(until) ?? 0) > this.options.clock.nowMs() ? 'protected until ' : 'protection ended at ') + until);
    return {
      ok: true,
      message: parts.join('; '),
      connected,
      draining: drain !== undefined,
      ...(drain ? { drainReason: drain.reason, drainDeadline: drain.deadline } : {}),
      ...(until !== undefined ? { protectedUntil: until } : {}),
    };
  }
}
