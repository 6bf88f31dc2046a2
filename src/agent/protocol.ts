/**
 * The agent protocol: JSON messages over one WebSocket per instance, at `/v1/agent` on the
 * server's listen address.
 *
 * Authentication happens on the HTTP upgrade: headers `X-Drover-Instance: <instanceId>` and
 * `Authorization: Bearer <credential>`, where the credential was issued for that instance when it
 * was created. The server refuses (HTTP 401) an unknown or wrong credential and (HTTP 403) one
 * for an instance that is deleted or unknown. A second connection for the same instance replaces
 * the first (which is closed with code 4000), so a reconnect after a network blip is never locked
 * out by a half-open old connection.
 *
 * Bootstrap: an agent started with a one-time bootstrap token instead of a credential (a cloud
 * whose user data others can read) first exchanges it over HTTP: `POST /v1/agent/bootstrap` with
 * `BootstrapRequest` as JSON, answered 200 with `BootstrapAnswer`; 401 for a token that is
 * unknown, expired or used (every token of the instance dies once one is used), 403 when the
 * provider id is not the one Drover recorded for the instance or the instance is deleted, 503
 * while the server does not know the provider id yet (the create's answer has not arrived) or does
 * not lead (retry), 307 from a follower to its leader, 400 for a body that does not validate.
 */
import { z } from 'zod';

/** Agent → server. */
export type AgentMessage =
  /** Sent every `healthCheckIntervalMs` while the instance is healthy (workload running, health command passing). */
  | { type: 'health'; at?: string; workload?: 'running' | 'none' }
  /** The instance saw a termination notice (as a cloud publishes it in instance metadata). */
  | { type: 'notice'; terminateAt: string }
  /**
   * The cloud recommends moving work off this instance (EC2: a rebalance recommendation, an
   * elevated risk of a spot interruption); `noticeTime` is when the cloud issued it.
   */
  | { type: 'rebalance'; noticeTime: string }
  /** The drain is complete (the drain command exited 0, or there was none to run). */
  | { type: 'drainAck' }
  /** Clean shutdown: no disconnect check follows. */
  | { type: 'goodbye'; reason?: string }
  /** The workload asks (through the agent's local socket) to protect its instance for `forMs`. */
  | { type: 'protect'; requestId: string; forMs: number }
  /** The workload ends its protection. */
  | { type: 'unprotect'; requestId: string }
  /** The workload (or a running drain command) asks for `byMs` more before the drain deadline. */
  | { type: 'extend'; requestId: string; byMs: number }
  /** The workload completes its instance's launch hook (`drover self ready`: continue). */
  | { type: 'launchHook'; requestId: string; result: 'continue' | 'abandon' };

/** Server → agent. */
export type ServerMessage =
  | { type: 'welcome'; instanceId: string; healthCheckIntervalMs: number; serverTime: string }
  /** Finish work and acknowledge before `deadline`; the instance is deleted then in any case. */
  | { type: 'drain'; reason: string; deadline: string }
  /** The drain was cancelled (by an operator): the instance returns to service. */
  | { type: 'drainCancelled' }
  /** The answer to a protect, unprotect, extend or launchHook request. */
  | { type: 'result'; requestId: string; ok: boolean; message: string; drainDeadline?: string; protectedUntil?: string | null }
  | { type: 'error'; message: string };

/** The server's answer to a forwarded request (protect, unprotect, extend). */
export type ServerResult = Extract<ServerMessage, { type: 'result' }>;

/** Epoch ms of an ISO time as the protocol carries it, or undefined when it does not parse. */
export function isoToMs(iso: string): number | undefined {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

/** WebSocket close codes used by the server. */
export const CLOSE = {
  normal: 1000,
  superseded: 4000,
  badMessage: 4400,
  deleted: 4403,
  serverStopping: 4503,
} as const;

export const AGENT_PATH = '/v1/agent';
export const INSTANCE_HEADER = 'x-drover-instance';
/**
 * Sent by an agent on the upgrade with the value `pong` when it counts an unsolicited WebSocket pong
 * (RFC 6455 §5.5.3: a unidirectional heartbeat, not answered) as hearing from the server. The
 * server then keeps such an agent's connection alive with pongs while the agent reports, instead
 * of pings each answered by a pong it must read (at 10,000 agents, a thousand reads a second,
 * bench B5); it still pings an agent it has not heard from, to hear it answer. An agent without
 * the header (an older one) is pinged as before.
 */
export const HEARTBEAT_HEADER = 'x-drover-heartbeat';
export const HEARTBEAT_PONG = 'pong';

/** Where an agent exchanges its bootstrap token for its credential (HTTP POST, JSON). */
export const AGENT_BOOTSTRAP_PATH = '/v1/agent/bootstrap';
/** The largest bootstrap request body the server reads. */
export const BOOTSTRAP_BODY_LIMIT = 4 * 1024;

/** What an agent sends to exchange its bootstrap token. */
export const bootstrapRequestSchema = z.strictObject({
  /** The Drover instance id the token was issued for (userData DROVER_INSTANCE_ID). */
  instanceId: z.string().min(1).max(200),
  /** The one-time token (userData DROVER_BOOTSTRAP_TOKEN). */
  token: z.string().regex(/^[A-Za-z0-9_-]{16,256}$/, { error: 'must be a bootstrap token (16-256 base64url characters)' }),
  /** The cloud's id of the machine the agent runs on, read from its metadata (EC2: IMDS instance-id; Hetzner Cloud: the numeric server id). */
  providerId: z.string().regex(/^[\x21-\x7e]{1,256}$/, { error: 'must be 1-256 printable characters' }),
});
export type BootstrapRequest = z.output<typeof bootstrapRequestSchema>;

/** The server's answer to a bootstrap exchange that succeeded. */
export const bootstrapAnswerSchema = z.object({ credential: z.string().min(1).max(512) });
export type BootstrapAnswer = z.output<typeof bootstrapAnswerSchema>;

/** The JSON object in `text`, or null when it is not one. */
function jsonObject(text: string): Record<string, unknown> | null {
  try {
    const raw: unknown = JSON.parse(text);
    return raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Parses and validates a message from an agent; null when it is not one. */
export function parseAgentMessage(text: string): AgentMessage | null {
  const msg = jsonObject(text);
  if (!msg) return null;
  switch (msg.type) {
    case 'health':
      if (msg.at !== undefined && (typeof msg.at !== 'string' || Number.isNaN(Date.parse(msg.at)))) return null;
      return { type: 'health', ...(typeof msg.at === 'string' ? { at: msg.at } : {}), ...(msg.workload === 'running' || msg.workload === 'none' ? { workload: msg.workload } : {}) };
    case 'notice':
      if (typeof msg.terminateAt !== 'string' || Number.isNaN(Date.parse(msg.terminateAt))) return null;
      return { type: 'notice', terminateAt: msg.terminateAt };
    case 'rebalance':
      if (typeof msg.noticeTime !== 'string' || msg.noticeTime.length > 64 || Number.isNaN(Date.parse(msg.noticeTime))) return null;
      return { type: 'rebalance', noticeTime: msg.noticeTime };
    case 'drainAck':
      return { type: 'drainAck' };
    case 'goodbye':
      return { type: 'goodbye', ...(typeof msg.reason === 'string' ? { reason: msg.reason.slice(0, 200) } : {}) };
    case 'protect':
      if (!isRequestId(msg.requestId) || !isPositiveMs(msg.forMs)) return null;
      return { type: 'protect', requestId: msg.requestId, forMs: msg.forMs };
    case 'unprotect':
      if (!isRequestId(msg.requestId)) return null;
      return { type: 'unprotect', requestId: msg.requestId };
    case 'extend':
      if (!isRequestId(msg.requestId) || !isPositiveMs(msg.byMs)) return null;
      return { type: 'extend', requestId: msg.requestId, byMs: msg.byMs };
    case 'launchHook':
      if (!isRequestId(msg.requestId) || (msg.result !== 'continue' && msg.result !== 'abandon')) return null;
      return { type: 'launchHook', requestId: msg.requestId, result: msg.result };
    default:
      return null;
  }
}

function isRequestId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 64;
}

function isPositiveMs(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= 30 * 86_400_000;
}

/** Parses a message from the server; null when it is not one. */
export function parseServerMessage(text: string): ServerMessage | null {
  const msg = jsonObject(text);
  if (!msg) return null;
  switch (msg.type) {
    case 'welcome':
      if (typeof msg.instanceId !== 'string' || typeof msg.healthCheckIntervalMs !== 'number') return null;
      return { type: 'welcome', instanceId: msg.instanceId, healthCheckIntervalMs: msg.healthCheckIntervalMs, serverTime: typeof msg.serverTime === 'string' ? msg.serverTime : '' };
    case 'drain':
      if (typeof msg.reason !== 'string' || typeof msg.deadline !== 'string') return null;
      return { type: 'drain', reason: msg.reason, deadline: msg.deadline };
    case 'drainCancelled':
      return { type: 'drainCancelled' };
    case 'result':
      if (typeof msg.requestId !== 'string' || typeof msg.ok !== 'boolean') return null;
      return {
        type: 'result',
        requestId: msg.requestId,
        ok: msg.ok,
        message: typeof msg.message === 'string' ? msg.message : '',
        ...(typeof msg.drainDeadline === 'string' ? { drainDeadline: msg.drainDeadline } : {}),
        ...(typeof msg.protectedUntil === 'string' || msg.protectedUntil === null ? { protectedUntil: msg.protectedUntil } : {}),
      };
    case 'error':
      return { type: 'error', message: typeof msg.message === 'string' ? msg.message : '' };
    default:
      return null;
  }
}
