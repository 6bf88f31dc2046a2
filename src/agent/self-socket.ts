/**
 * The agent's local socket: how the workload (and the drain and health commands) talk to the
 * agent of their instance. The agent passes its path in DROVER_AGENT_SOCKET; `drover self ...`
 * is the command-line client.
 *
 * Protocol: a unix stream socket (mode 0600). The client writes one JSON request per line; the
 * agent answers each with one JSON line, in order. A client may send several requests on one
 * connection and may half-close after the last: the answers still come.
 *
 * Requests:
 * - `{"op":"protect","for":"30m"}`   protect the instance from disruption for that long
 * - `{"op":"unprotect"}`              end the protection
 * - `{"op":"extend","by":"10m"}`      push the drain deadline out by that much
 * - `{"op":"ready"}`                  complete the instance's launch hook: it may serve (continue)
 * - `{"op":"status"}`                 what the agent knows (answered locally)
 * Durations as in the config ("90s", "30m", "2h", "1h30m"), from 1 ms up to 30 days.
 *
 * Answers: `{"ok":true|false,"message":"...","drainDeadline"?:ISO,"protectedUntil"?:ISO|null}`;
 * `status` adds `connected`, `draining` and, while draining, `drainReason`. protect, unprotect,
 * extend and ready are forwarded to the server and answered with its result; a request the agent cannot
 * forward (not connected, no answer in time) is answered `ok:false` with the reason.
 */
import { chmodSync, lstatSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { parseDuration } from '../config/duration.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';

export type SelfRequest = { op: 'protect'; forMs: number } | { op: 'unprotect' } | { op: 'extend'; byMs: number } | { op: 'ready' } | { op: 'status' };

export interface SelfResponse {
  ok: boolean;
  message: string;
  drainDeadline?: string;
  /** null: not protected (as the server last said). */
  protectedUntil?: string | null;
  /** `status` only: whether the agent is connected to a server (welcomed). */
  connected?: boolean;
  /** `status` only: whether the instance is draining. */
  draining?: boolean;
  /** `status` only, while draining. */
  drainReason?: string;
}

/** The environment variable naming the socket, in every process the agent starts. */
export const SELF_SOCKET_ENV = 'DROVER_AGENT_SOCKET';

/** The protocol's limit for protect and extend durations (protocol.ts accepts up to 30 days). */
const MAX_DURATION_MS = 30 * 86_400_000;
/** A request line longer than this is refused and the connection closed. */
const MAX_LINE = 16 * 1024;
/** sun_path holds 108 bytes with the terminating NUL; Node truncates a longer path silently. */
const MAX_SOCKET_PATH = 107;

/** Parses one request line; a string is the reason it is not a valid request. */
export function parseSelfRequest(line: string): SelfRequest | string {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return 'bad request: not JSON';
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return 'bad request: not a JSON object';
  const req = raw as Record<string, unknown>;
  switch (req.op) {
    case 'protect': {
      const forMs = durationField(req.for);
      if (typeof forMs === 'string') return `protect: "for" ${forMs}`;
      return { op: 'protect', forMs };
    }
    case 'extend': {
      const byMs = durationField(req.by);
      if (typeof byMs === 'string') return `extend: "by" ${byMs}`;
      return { op: 'extend', byMs };
    }
    case 'unprotect':
      return { op: 'unprotect' };
    case 'ready':
      return { op: 'ready' };
    case 'status':
      return { op: 'status' };
    default:
      return `bad request: "op" must be one of protect, unprotect, extend, ready, status`;
  }
}

/** Milliseconds, or why the value is not an acceptable duration. */
function durationField(value: unknown): number | string {
  const ms = typeof value === 'string' ? parseDuration(value) : null;
  if (ms === null) return 'must be a duration such as "90s", "30m" or "2h"';
  if (ms < 1 || ms > MAX_DURATION_MS) return 'must be more than 0 and at most 30d';
  return ms;
}

export interface SelfSocketOptions {
  /** Absolute path of the socket. */
  path: string;
  logger: Logger;
  /** Answers a request; a rejection is answered `ok:false` with its message. */
  handle(request: SelfRequest): Promise<SelfResponse>;
}

export interface SelfSocket {
  /** Stops listening, drops open connections, removes the socket file. */
  close(): Promise<void>;
}

/**
 * Listens on `options.path`: a stale socket file there is removed first (anything else there is
 * left alone and nothing listens); the socket is created with mode 0600. Failures are logged, not
 * thrown: the agent runs on without its socket.
 */
export function listenSelfSocket(options: SelfSocketOptions): SelfSocket {
  const { path, logger } = options;
  const connections = new Set<Socket>();
  let closed = false;
  let inode: number | undefined;
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    if (closed) {
      socket.destroy();
      return;
    }
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveConnection(socket, options);
  });
  server.on('error', (err) => logger.error({ path, err: errorMessage(err) }, 'agent socket failed'));
  server.on('listening', () => {
    try {
      chmodSync(path, 0o600);
      inode = statSync(path).ino;
      logger.info({ path }, 'agent socket listening');
    } catch (err) {
      logger.error({ path, err: errorMessage(err) }, 'agent socket failed');
    }
  });

  let listening = false;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    logger.error({ path, maxBytes: MAX_SOCKET_PATH }, 'agent socket path too long; not listening');
  } else if (removeStaleSocket(path, logger)) {
    // Created 0600 from the start where the umask can be set (the main thread); chmod follows anyway.
    let oldMask: number | undefined;
    try {
      oldMask = process.umask(0o177);
    } catch {
      // worker thread: chmod only
    }
    try {
      server.listen(path);
      listening = true;
      inode = statSync(path, { throwIfNoEntry: false })?.ino; // bound already (else set once listening)
    } catch (err) {
      logger.error({ path, err: errorMessage(err) }, 'agent socket failed');
    } finally {
      if (oldMask !== undefined) process.umask(oldMask);
    }
  }

  return {
    close: async () => {
      if (closed) return;
      closed = true;
      for (const socket of connections) socket.destroy();
      if (listening) await new Promise<void>((resolve) => server.close(() => resolve()));
      // Remove the file only if it is still the one this agent created.
      try {
        if (inode !== undefined && statSync(path).ino === inode) rmSync(path, { force: true });
      } catch {
        // already gone
      }
    },
  };
}

/** True when nothing (or only a stale socket, now removed) is at `path`. */
function removeStaleSocket(path: string, logger: Logger): boolean {
  try {
    const stat = lstatSync(path);
    if (!stat.isSocket()) {
      logger.error({ path }, 'agent socket path is taken by something that is not a socket; not listening');
      return false;
    }
    rmSync(path, { force: true });
    return true;
  } catch (err) {
    if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    logger.error({ path, err: errorMessage(err) }, 'agent socket failed');
    return false;
  }
}

/** Reads request lines and writes one answer line each, in order. */
function serveConnection(socket: Socket, options: SelfSocketOptions): void {
  socket.setEncoding('utf8');
  let buffer = '';
  let queue: Promise<void> = Promise.resolve();
  let refused = false;
  const answer = (response: SelfResponse): void => {
    if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(response)}\n`);
  };
  const handleLine = async (line: string): Promise<void> => {
    const request = parseSelfRequest(line);
    if (typeof request === 'string') {
      answer({ ok: false, message: request });
      return;
    }
    try {
      answer(await options.handle(request));
    } catch (err) {
      answer({ ok: false, message: errorMessage(err) });
    }
  };
  socket.on('data', (chunk: string) => {
    if (refused) return;
    buffer += chunk;
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
      if (line === '') continue;
      queue = queue.then(() => handleLine(line));
    }
    if (buffer.length > MAX_LINE) {
      refused = true;
      buffer = '';
      queue = queue.then(() => {
        answer({ ok: false, message: `bad request: a request line is limited to ${MAX_LINE} bytes` });
        socket.end();
      });
    }
  });
  socket.on('end', () => {
    // The client has sent everything: a last line without a newline counts too.
    const line = buffer.trim();
    buffer = '';
    if (line !== '' && !refused) queue = queue.then(() => handleLine(line));
    void queue.then(() => socket.end());
  });
  socket.on('error', () => {
    // the client went away; nothing to answer
  });
}
