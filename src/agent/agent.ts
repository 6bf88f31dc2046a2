/**
 * The Drover agent: runs on an instance, holds one WebSocket to a Drover server (protocol.ts),
 * and reports on the instance.
 *
 * Contracts:
 * - Connection. Connects to `<server>/v1/agent` (http→ws, https→wss) with `X-Drover-Instance`
 *   and `Authorization: Bearer <credential>`, trying the configured servers in turn. When a
 *   connection drops, fails or is refused, it reconnects to the next server after an exponential
 *   backoff with jitter (250 ms doubling to 10 s by default; reset by a `welcome`). A server that
 *   is silent (no message, no ping) for `serverSilenceMs` is treated as gone.
 * - TLS. A wss:// server is verified against `serverCa` when configured, else the system's CAs;
 *   a server that fails verification is a failed connection like any other (logged with the TLS
 *   error, retried with backoff). With `clientCert`/`clientKey` the agent presents that
 *   certificate (servers with `server.tls.clientCa`), re-reading the files at each connection.
 * - HA. A refusal with 503 (a replica that does not lead, an election in progress) is retried
 *   within at most a second, on the server its `X-Drover-Leader` header names when that is one
 *   of the configured servers, else on the next one.
 * - Refusals. HTTP 401 (credential refused) and 403 (instance deleted or unknown), and close code
 *   4403 (deleted), are logged as such; after `maxRefusals` consecutive refusals the agent gives
 *   up: it stops the workload and `done` settles with exit code 2 (401) or 3 (403). Any welcome
 *   resets the count.
 * - Health. After `welcome` (which sets the interval), `health` is sent at once and then every
 *   interval, but only while the instance is healthy: the workload (if `command` is configured)
 *   is running, and the `healthCommand` (if configured) exits 0 within one interval. While
 *   unhealthy nothing is sent — the server judges silence — and the connection is kept.
 * - Workload. `command` is started at once, supervised, restarted with backoff when it exits, and
 *   stopped (SIGTERM, SIGKILL after a grace) by `stop()`. Its output goes to the agent's.
 * - Notices. `noticeFile` is polled every second; each distinct `{ "terminateAt": ISO }` is sent
 *   once as `notice` (at once when connected, else after the next welcome).
 * - Drain. On `drain`, `drainCommand` runs (env DROVER_INSTANCE_ID, DROVER_DRAIN_REASON,
 *   DROVER_DRAIN_DEADLINE; killed at the deadline); exit 0 sends `drainAck` (again after a
 *   reconnect if it could not be sent, or if the server sends the drain again). A failing command
 *   is logged and not acknowledged; a repeated `drain` runs it again. Without a `drainCommand`
 *   the agent does NOT acknowledge: the operator (or the drain deadline) ends the drain.
 * - Drain extension. While the drain command runs and the deadline is within
 *   max(2 × interval, 30 s), the agent sends `extend` by max(5 × interval, 60 s) and takes the
 *   deadline from the server's `result` (a new deadline re-arms the check; an unanswered request
 *   is retried every few seconds). The server caps extensions: an answer that does not move the
 *   deadline (or a refusal) is logged once and the agent stops asking. The command is killed at
 *   the deadline in force, which any `result` or repeated `drain` may move.
 * - Drain cancelled. On `drainCancelled` the running drain command's process group gets SIGTERM
 *   (SIGKILL after `drainCancelGraceMs`), the drain is forgotten, and no `drainAck` is sent.
 * - Self-service socket. With `selfSocket`, the agent listens there (self-socket.ts) and every
 *   child gets DROVER_AGENT_SOCKET=<absolute path>. protect/unprotect/extend requests are sent to
 *   the server with a fresh requestId and answered with its `result`; not connected → an
 *   immediate `ok:false`; no result within `selfRequestTimeoutMs` (or the connection lost first)
 *   → `ok:false`. `status` is answered locally. Any `result` updates the known protection and
 *   drain deadline.
 * - Stop. `stop(reason)` sends `goodbye`, closes the connection with 1000, stops the workload,
 *   closes the self-service socket (removing its file), removes the pid file, and settles `done`
 *   with exit code 0. Signal handling is the caller's
 *   (the CLI calls `stop()` on SIGTERM/SIGINT).
 * - Every child process carries DROVER_INSTANCE_ID. All time comes from the injected clock.
 */
import { backoffDelayMs } from '../util/backoff.js';
import { randomUUID } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { WebSocket } from 'ws';
import { SystemClock, type Clock, type TimerHandle } from '../clock/index.js';
import { formatDuration } from '../config/duration.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { AgentConfig } from './config.js';
import { describeResult, runCommand, Supervisor, type RunningCommand } from './process.js';
import { AGENT_PATH, CLOSE, INSTANCE_HEADER, parseServerMessage, type AgentMessage, type ServerMessage } from './protocol.js';
import { listenSelfSocket, SELF_SOCKET_ENV, type SelfRequest, type SelfResponse, type SelfSocket } from './self-socket.js';

export interface AgentOptions {
  logger: Logger;
  clock?: Clock;
  /** The WebSocket client class (tests may pass a wrapper). Default: `ws`'s WebSocket. */
  WebSocketImpl?: typeof WebSocket;
  /** First reconnect delay; doubles per failed attempt up to `reconnectMaxMs`. Default 250. */
  reconnectInitialMs?: number;
  /** Default 10 000. */
  reconnectMaxMs?: number;
  /** Consecutive refusals (401/403/close 4403) before giving up. Default 8. */
  maxRefusals?: number;
  /** Default 1 000. */
  noticePollMs?: number;
  /**
   * A connection with nothing heard from the server this long is dropped. Default
   * max(2.5 × interval, 3 s): below a new leader's grace (missedHealthThreshold × interval, 3 by
   * default), so agents of a leader that hangs (SIGSTOP) reach the new one in time.
   */
  serverSilenceMs?: number;
  /** Workload: SIGTERM → SIGKILL grace at stop. Default 8 000 (below the local provider's 10 s). */
  workloadStopGraceMs?: number;
  /** Workload restart backoff: first delay and cap. Default 1 000 and 30 000. */
  workloadRestartInitialMs?: number;
  workloadRestartMaxMs?: number;
  /** How long a forwarded self-service request (protect, unprotect, extend) waits for the server's result. Default 10 000. */
  selfRequestTimeoutMs?: number;
  /** A cancelled drain's command: SIGTERM → SIGKILL grace. Default 5 000. */
  drainCancelGraceMs?: number;
  /** Random source for jitter. Default Math.random. */
  random?: () => number;
  /**
   * Keep the Node process alive until the agent ends (default true). The clock's timers do not
   * hold the process open, so without this an agent waiting to reconnect, with no workload,
   * would let its process exit.
   */
  keepAlive?: boolean;
}

/** How the agent ended. */
export interface AgentExit {
  /** 0 after stop(); 2 when the credential was refused (401); 3 when the instance is deleted (403). */
  exitCode: number;
  reason: string;
}

export interface Agent {
  /** Says goodbye, closes the connection, stops the workload. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Settles once the agent has ended, by stop() or by giving up. Never rejects. */
  readonly done: Promise<AgentExit>;
}

export const EXIT_CREDENTIAL_REFUSED = 2;
export const EXIT_INSTANCE_DELETED = 3;

const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 24 * 3_600_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const CLOSE_WAIT_MS = 2_000;
/** A drain command gets at least this long, even when the deadline is (nearly) past. */
const MIN_DRAIN_RUN_MS = 1_000;
/** Drain extension: asked for when the deadline is this close (at least), by this much (at least). */
const EXTEND_WHEN_WITHIN_MIN_MS = 30_000;
const EXTEND_BY_MIN_MS = 60_000;
/** Drain extension: retry delay after a request that got no answer (at most). */
const EXTEND_RETRY_MAX_MS = 5_000;
const NOT_CONNECTED = 'not connected to the Drover server';

/** Starts an agent for `config`. It runs until `stop()` or until it gives up (see `done`). */
export function runAgent(config: AgentConfig, options: AgentOptions): Agent {
  return new AgentRunner(config, options);
}

/** `<server>/v1/agent` as a WebSocket URL. */
export function agentUrl(server: string): string {
  const url = new URL(server);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${AGENT_PATH}`;
  url.search = '';
  url.hash = '';
  return url.toString();
}

interface DrainState {
  reason: string;
  /** As the server last set it (ISO). */
  deadline: string;
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

type ServerResult = Extract<ServerMessage, { type: 'result' }>;
/** What a wss:// connection adds to ws's options. */
interface AgentTlsOptions {
  rejectUnauthorized?: true;
  ca?: string;
  cert?: Buffer;
  key?: Buffer;
}
/** Agent messages that carry a requestId and are answered by a `result`, without the id. */
type Forwardable = { type: 'protect'; forMs: number } | { type: 'unprotect' } | { type: 'extend'; byMs: number };

class AgentRunner implements Agent {
  readonly done: Promise<AgentExit>;
  private resolveDone: (exit: AgentExit) => void = () => undefined;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly WS: typeof WebSocket;
  private readonly random: () => number;
  private readonly env: NodeJS.ProcessEnv;
  private readonly workload: Supervisor | undefined;

  private ws: WebSocket | undefined;
  /** Increases with every connection attempt; callbacks of older attempts are ignored. */
  private generation = 0;
  private welcomed = false;
  private serverIndex = 0;
  private failures = 0;
  private refusals = 0;
  private intervalMs: number;
  private lastHeardMs = 0;

  private reconnectTimer: TimerHandle | undefined;
  private healthTimer: TimerHandle | undefined;
  private silenceTimer: TimerHandle | undefined;
  private noticeTimer: TimerHandle | undefined;
  private healthCheck: RunningCommand | undefined;
  private healthy: boolean | undefined;
  /** Identifies the current health loop; a welcome starts a new one and retires the old. */
  private healthLoop = 0;

  private noticeSeen: string | undefined;
  private noticePending: string | undefined;
  private drain: DrainState | undefined;
  private drainAckPending = false;

  private readonly socketPath: string | undefined;
  private selfSocket: SelfSocket | undefined;
  /** Forwarded requests waiting for the server's `result`, by requestId. */
  private readonly pending = new Map<string, (answer: ServerResult | string) => void>();
  /** The protection as the server last reported it: ISO, null (none), or undefined (unknown). */
  private protectedUntil: string | null | undefined;

  private ending: Promise<void> | undefined;
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly options: AgentOptions,
  ) {
    this.clock = options.clock ?? new SystemClock();
    this.log = options.logger;
    this.WS = options.WebSocketImpl ?? WebSocket;
    this.random = options.random ?? Math.random;
    this.intervalMs = config.healthCheckIntervalMs;
    this.socketPath = config.selfSocket === undefined ? undefined : resolvePath(config.selfSocket);
    this.env = { ...process.env, DROVER_INSTANCE_ID: config.instanceId };
    delete this.env[SELF_SOCKET_ENV];
    if (this.socketPath !== undefined) this.env[SELF_SOCKET_ENV] = this.socketPath;
    this.done = new Promise<AgentExit>((resolve) => {
      this.resolveDone = resolve;
    });
    // A ref'd handle that only holds the process open; no timing depends on it.
    if (options.keepAlive !== false) this.keepAlive = setInterval(() => undefined, 1 << 30);
    if (config.pidFile) this.writePidFile(config.pidFile);
    // Before the workload starts, so that it can use the socket at once.
    if (this.socketPath !== undefined) this.selfSocket = listenSelfSocket({ path: this.socketPath, logger: this.log, handle: (req) => this.handleSelf(req) });
    if (config.command) {
      this.workload = new Supervisor({
        argv: config.command,
        env: this.env,
        clock: this.clock,
        logger: this.log,
        restartInitialMs: options.workloadRestartInitialMs ?? 1_000,
        restartMaxMs: options.workloadRestartMaxMs ?? 30_000,
        stableAfterMs: 60_000,
        stopGraceMs: options.workloadStopGraceMs ?? 8_000,
        random: this.random,
      });
      this.workload.start();
    }
    this.log.info({ instanceId: config.instanceId, servers: config.servers, workload: Boolean(config.command) }, 'agent starting');
    const plain = config.servers.filter((s) => !s.startsWith('https:'));
    if ((config.serverCa !== undefined || config.clientCert !== undefined) && plain.length > 0) this.log.warn({ servers: plain }, 'TLS settings given but some servers are not https://: those connections are not encrypted');
    if (config.noticeFile) this.pollNotice();
    this.connect();
  }

  // ---- stop ----------------------------------------------------------------------------------

  stop(reason = 'agent stopping'): Promise<void> {
    return this.end({ exitCode: 0, reason }, true);
  }

  private end(exit: AgentExit, sayGoodbye: boolean): Promise<void> {
    if (this.ending) return this.ending;
    this.ending = (async () => {
      this.log.info({ reason: exit.reason, exitCode: exit.exitCode }, 'agent stopping');
      for (const t of [this.reconnectTimer, this.healthTimer, this.silenceTimer, this.noticeTimer]) t?.cancel();
      this.healthCheck?.kill('SIGKILL');
      this.drain?.extendTimer?.cancel();
      const ws = this.ws;
      this.ws = undefined;
      this.generation++;
      this.welcomed = false;
      this.failPending('the agent is stopping');
      if (ws) await this.closeSocket(ws, sayGoodbye ? exit.reason : undefined);
      this.drain?.command?.kill('SIGTERM');
      await this.workload?.stop();
      await this.selfSocket?.close();
      if (this.config.pidFile) this.removePidFile(this.config.pidFile);
      this.log.info({ exitCode: exit.exitCode }, 'agent stopped');
    })()
      .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'agent stop failed'))
      .finally(() => {
        if (this.keepAlive) clearInterval(this.keepAlive);
        this.resolveDone(exit);
      });
    return this.ending;
  }

  private async closeSocket(ws: WebSocket, goodbye: string | undefined): Promise<void> {
    if (ws.readyState === ws.CONNECTING) {
      ws.terminate();
      return;
    }
    if (ws.readyState !== ws.OPEN) return;
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    if (goodbye !== undefined) ws.send(JSON.stringify({ type: 'goodbye', reason: goodbye } satisfies AgentMessage));
    ws.close(CLOSE.normal, 'agent stopping');
    const outcome = await Promise.race([closed.then(() => 'closed' as const), this.clock.sleep(CLOSE_WAIT_MS).then(() => 'timeout' as const)]);
    if (outcome === 'timeout') ws.terminate();
  }

  // ---- connection ----------------------------------------------------------------------------

  private connect(): void {
    if (this.ending) return;
    const server = this.config.servers[this.serverIndex % this.config.servers.length] ?? '';
    const gen = ++this.generation;
    let url: string;
    let ws: WebSocket;
    try {
      url = agentUrl(server);
    } catch (err) {
      this.log.error({ server, err: errorMessage(err) }, 'invalid server address');
      this.afterFailure(gen);
      return;
    }
    let tls: AgentTlsOptions;
    try {
      tls = url.startsWith('wss:') ? this.tlsOptions() : {};
    } catch (err) {
      this.log.error({ url, err: errorMessage(err) }, 'reading the agent client certificate failed');
      this.afterFailure(gen);
      return;
    }
    try {
      this.log.debug({ url }, 'connecting to server');
      ws = new this.WS(url, {
        headers: { [INSTANCE_HEADER]: this.config.instanceId, authorization: `Bearer ${this.config.credential}` },
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        ...tls,
      });
    } catch (err) {
      this.log.error({ server, err: errorMessage(err) }, 'invalid server address');
      this.afterFailure(gen);
      return;
    }
    this.ws = ws;
    let refusedStatus: number | undefined;
    let leaderHint: string | undefined;
    let lastError: string | undefined;
    let opened = false;
    ws.on('unexpected-response', (_req, res) => {
      refusedStatus = res.statusCode;
      const hint = res.headers['x-drover-leader'];
      leaderHint = Array.isArray(hint) ? hint[0] : hint;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      if (gen !== this.generation) return;
      opened = true;
      this.lastHeardMs = this.clock.nowMs();
      this.armSilenceCheck(gen);
      this.log.debug({ url }, 'connected; waiting for welcome');
    });
    ws.on('ping', () => {
      this.lastHeardMs = this.clock.nowMs();
    });
    ws.on('message', (data, isBinary) => {
      if (gen !== this.generation || isBinary) return;
      this.lastHeardMs = this.clock.nowMs();
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
      const msg = parseServerMessage(text);
      if (!msg) {
        this.log.warn({ length: text.length }, 'unrecognised message from server');
        return;
      }
      this.onMessage(gen, msg);
    });
    ws.on('error', (err) => {
      lastError = err.message;
    });
    ws.on('close', (code, reasonBuf) => {
      if (gen !== this.generation) return;
      const wasWelcomed = this.welcomed;
      this.ws = undefined;
      this.welcomed = false;
      this.healthTimer?.cancel();
      this.silenceTimer?.cancel();
      this.healthCheck?.kill('SIGKILL');
      this.failPending('the connection to the Drover server was lost before it answered');
      const reason = reasonBuf.toString('utf8');
      if (refusedStatus === 401 || refusedStatus === 403 || code === CLOSE.deleted) {
        const status = refusedStatus ?? 403;
        this.refusals++;
        if (status === 401) this.log.error({ url, status, refusals: this.refusals }, 'server refused the agent credential');
        else this.log.error({ url, status, code, refusals: this.refusals }, 'server says this instance is deleted or unknown');
        if (this.refusals >= (this.options.maxRefusals ?? 8)) {
          void this.end(
            status === 401
              ? { exitCode: EXIT_CREDENTIAL_REFUSED, reason: 'credential refused by the server' }
              : { exitCode: EXIT_INSTANCE_DELETED, reason: 'instance deleted or unknown to the server' },
            false,
          );
          return;
        }
      } else if (refusedStatus !== undefined) {
        this.log.warn({ url, status: refusedStatus }, 'server refused the agent connection');
      } else if (wasWelcomed) {
        this.log.warn({ url, code, reason }, 'connection to server lost');
      } else if (opened) {
        this.log.warn({ url, code, reason }, 'connection closed before welcome');
      } else {
        this.log.warn({ url, err: lastError }, 'could not connect to server');
      }
      if (code === CLOSE.superseded) this.log.warn({ url }, 'connection superseded by another connection for this instance');
      this.afterFailure(gen, refusedStatus === 503 ? { leader: leaderHint } : undefined);
    });
  }

  /**
   * TLS options of a wss:// connection: the server is verified against `serverCa` when given
   * (else the system's CAs; never unverified), and the client certificate, when configured, is
   * read now so that a rotated one is used from this connection on.
   */
  private tlsOptions(): AgentTlsOptions {
    const { serverCa, clientCert, clientKey } = this.config;
    const options: AgentTlsOptions = { rejectUnauthorized: true };
    if (serverCa !== undefined) options.ca = serverCa;
    if (clientCert !== undefined && clientKey !== undefined) {
      options.cert = readFileSync(clientCert);
      options.key = readFileSync(clientKey);
    }
    return options;
  }

  /**
   * Schedules the next attempt on the next server, after the backoff. After a 503 (not the
   * leader, or no leader yet) the next attempt goes to the named leader if it is a configured
   * server, and waits at most a second.
   */
  private afterFailure(gen: number, unavailable?: { leader: string | undefined }): void {
    if (this.ending || gen !== this.generation) return;
    const strip = (u: string): string => u.replace(/\/+$/, '');
    const hinted = unavailable?.leader ? this.config.servers.findIndex((s) => strip(s) === strip(unavailable.leader ?? '')) : -1;
    this.serverIndex = hinted >= 0 ? hinted : (this.serverIndex + 1) % this.config.servers.length;
    const initial = this.options.reconnectInitialMs ?? 250;
    const max = Math.min(this.options.reconnectMaxMs ?? 10_000, unavailable ? 1_000 : Number.POSITIVE_INFINITY);
    const delayMs = backoffDelayMs({ initialMs: initial, maxMs: max, jitter: 0.5, mode: 'below' }, this.failures, this.random);
    this.failures++;
    this.log.debug({ delayMs, attempt: this.failures }, 'reconnecting after backoff');
    this.reconnectTimer = this.clock.schedule(this.clock.nowMs() + delayMs, () => {
      this.reconnectTimer = undefined;
      this.connect();
    });
  }

  private armSilenceCheck(gen: number): void {
    this.silenceTimer?.cancel();
    const limit = this.options.serverSilenceMs ?? Math.max(2.5 * this.intervalMs, 3_000);
    const checkEvery = Math.max(MIN_INTERVAL_MS, Math.min(this.intervalMs, limit));
    this.silenceTimer = this.clock.schedule(this.clock.nowMs() + checkEvery, () => {
      if (gen !== this.generation || !this.ws) return;
      const silentMs = this.clock.nowMs() - this.lastHeardMs;
      if (silentMs > limit) {
        this.log.warn({ silentMs }, 'server silent; reconnecting');
        this.ws.terminate();
        return;
      }
      this.armSilenceCheck(gen);
    });
  }

  private send(msg: AgentMessage): boolean {
    const ws = this.ws;
    if (!ws || !this.welcomed || ws.readyState !== ws.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  private onMessage(gen: number, msg: ServerMessage): void {
    switch (msg.type) {
      case 'welcome': {
        if (msg.instanceId !== this.config.instanceId) this.log.warn({ serverInstanceId: msg.instanceId }, 'welcome names another instance');
        const interval = Number.isFinite(msg.healthCheckIntervalMs) ? msg.healthCheckIntervalMs : this.config.healthCheckIntervalMs;
        this.intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.round(interval)));
        this.welcomed = true;
        this.failures = 0;
        this.refusals = 0;
        this.log.info({ healthCheckIntervalMs: this.intervalMs }, 'connected to server');
        this.armSilenceCheck(gen);
        this.flushPending();
        this.healthTimer?.cancel();
        void this.healthTick(gen, ++this.healthLoop);
        return;
      }
      case 'drain':
        this.onDrain(msg.reason, msg.deadline);
        return;
      case 'drainCancelled':
        this.onDrainCancelled();
        return;
      case 'result':
        this.onResult(msg);
        return;
      case 'error':
        this.log.warn({ message: msg.message }, 'server reported an error');
        return;
    }
  }

  private flushPending(): void {
    if (this.noticePending && this.send({ type: 'notice', terminateAt: this.noticePending })) {
      this.log.info({ terminateAt: this.noticePending }, 'termination notice sent');
      this.noticePending = undefined;
    }
    if (this.drainAckPending && this.send({ type: 'drainAck' })) {
      this.drainAckPending = false;
      this.log.info({}, 'drain acknowledged');
    }
  }

  // ---- health --------------------------------------------------------------------------------

  /** One health round: judge health, report if healthy, schedule the next round one interval after this one began. */
  private async healthTick(gen: number, loop: number): Promise<void> {
    const current = (): boolean => !this.ending && gen === this.generation && loop === this.healthLoop && this.welcomed;
    if (!current()) return;
    const startedMs = this.clock.nowMs();
    let problem: string | undefined;
    try {
      problem = await this.healthProblem();
    } catch (err) {
      problem = `health check failed: ${errorMessage(err)}`;
    }
    if (!current()) return;
    if (problem === undefined) {
      if (this.healthy === false) this.log.info({}, 'instance healthy again; reporting health');
      this.healthy = true;
      this.send({ type: 'health', at: this.clock.now().toISOString(), workload: this.workload ? 'running' : 'none' });
    } else {
      if (this.healthy !== false) this.log.warn({ problem }, 'instance unhealthy; not reporting health');
      this.healthy = false;
    }
    this.healthTimer = this.clock.schedule(Math.max(startedMs + this.intervalMs, this.clock.nowMs()), () => {
      void this.healthTick(gen, loop);
    });
  }

  /** Undefined when healthy, else what is wrong. */
  private async healthProblem(): Promise<string | undefined> {
    if (this.workload && !this.workload.running) return 'workload not running';
    if (!this.config.healthCommand) return undefined;
    const check = runCommand(this.config.healthCommand, { env: this.env, clock: this.clock, timeoutMs: this.intervalMs, output: 'quiet' });
    this.healthCheck = check;
    const result = await check.done;
    if (this.healthCheck === check) this.healthCheck = undefined;
    if (result.code === 0) return undefined;
    return `health command ${describeResult(result)}${result.stderrTail ? `: ${result.stderrTail}` : ''}`;
  }

  // ---- notices -------------------------------------------------------------------------------

  private pollNotice(): void {
    if (this.ending || !this.config.noticeFile) return;
    const terminateAt = readNoticeFile(this.config.noticeFile);
    if (terminateAt !== undefined && terminateAt !== this.noticeSeen) {
      this.noticeSeen = terminateAt;
      this.noticePending = terminateAt;
      this.log.info({ terminateAt }, 'termination notice seen');
      this.flushPending();
    }
    this.noticeTimer = this.clock.schedule(this.clock.nowMs() + (this.options.noticePollMs ?? 1_000), () => this.pollNotice());
  }

  // ---- drain ---------------------------------------------------------------------------------

  private onDrain(reason: string, deadline: string): void {
    this.log.info({ reason, deadline }, 'drain requested');
    const drainCommand = this.config.drainCommand;
    let state = this.drain;
    if (state) {
      state.reason = reason;
      this.setDrainDeadline(state, deadline);
    } else {
      state = { reason, deadline, deadlineMs: parseMs(deadline), state: 'none', extending: false, extendStopped: false };
      this.drain = state;
    }
    if (!drainCommand) {
      this.log.warn({}, 'no drainCommand configured; not acknowledging (the operator or the deadline ends the drain)');
      return;
    }
    if (state.state === 'running') {
      this.log.debug({}, 'drain command already running');
      return;
    }
    if (state.state === 'acked') {
      this.sendDrainAck();
      return;
    }
    const command = runCommand(drainCommand, {
      env: { ...this.env, DROVER_DRAIN_REASON: reason, DROVER_DRAIN_DEADLINE: deadline },
      clock: this.clock,
      output: 'inherit',
      ...(state.deadlineMs !== undefined ? { deadlineMs: this.drainKillAt(state.deadlineMs) } : {}),
    });
    state.state = 'running';
    state.command = command;
    state.extendStopped = false;
    this.log.info({ pid: command.pid }, 'drain command started');
    this.scheduleExtendCheck(state);
    const current = state;
    void command.done.then((result) => {
      current.command = undefined;
      current.extendTimer?.cancel();
      current.extendTimer = undefined;
      if (this.ending) return;
      if (this.drain !== current) {
        this.log.info({ result: describeResult(result) }, 'cancelled drain command ended');
        return;
      }
      if (result.code === 0) {
        current.state = 'acked';
        this.log.info({}, 'drain command succeeded');
        this.sendDrainAck();
      } else {
        current.state = 'failed';
        this.log.error({ result: describeResult(result), code: result.code, signal: result.signal }, 'drain command failed; drain not acknowledged');
      }
    });
  }

  /** When the drain command is killed for a deadline of `deadlineMs`. */
  private drainKillAt(deadlineMs: number): number {
    return Math.max(deadlineMs, this.clock.nowMs() + MIN_DRAIN_RUN_MS);
  }

  /** Takes a deadline the server set: moves the drain command's kill time and the extension check. */
  private setDrainDeadline(state: DrainState, deadline: string): void {
    const ms = parseMs(deadline);
    if (ms === undefined || ms === state.deadlineMs) return;
    state.deadline = deadline;
    state.deadlineMs = ms;
    this.log.info({ deadline }, 'drain deadline changed');
    state.command?.setDeadline(this.drainKillAt(ms));
    this.scheduleExtendCheck(state);
  }

  private onDrainCancelled(): void {
    const state = this.drain;
    this.drain = undefined;
    this.drainAckPending = false;
    const command = state?.command;
    this.log.info({ reason: state?.reason, pid: command?.pid }, 'drain cancelled by the server');
    if (!state) return;
    state.extendTimer?.cancel();
    state.extendTimer = undefined;
    if (!command) return;
    command.kill('SIGTERM');
    const graceMs = this.options.drainCancelGraceMs ?? 5_000;
    const force = this.clock.schedule(this.clock.nowMs() + graceMs, () => command.kill('SIGKILL'));
    void command.done.then(() => force.cancel());
  }

  // ---- drain extension -----------------------------------------------------------------------

  /** Extensions are asked for when the deadline is this close. */
  private extendWithinMs(): number {
    return Math.max(2 * this.intervalMs, EXTEND_WHEN_WITHIN_MIN_MS);
  }

  /** Arms the automatic extension check (at `atMs`, else when the deadline comes within range). */
  private scheduleExtendCheck(state: DrainState, atMs?: number): void {
    state.extendTimer?.cancel();
    state.extendTimer = undefined;
    if (this.ending || this.drain !== state || state.state !== 'running' || state.extending || state.extendStopped || state.deadlineMs === undefined) return;
    const at = atMs ?? state.deadlineMs - this.extendWithinMs();
    state.extendTimer = this.clock.schedule(at, () => {
      state.extendTimer = undefined;
      void this.autoExtend(state);
    });
  }

  private async autoExtend(state: DrainState): Promise<void> {
    const active = (): boolean => !this.ending && this.drain === state && state.state === 'running' && !state.extendStopped;
    const before = state.deadlineMs;
    if (!active() || state.extending || before === undefined) return;
    if (before - this.clock.nowMs() > this.extendWithinMs()) {
      this.scheduleExtendCheck(state);
      return;
    }
    const byMs = Math.max(5 * this.intervalMs, EXTEND_BY_MIN_MS);
    state.extending = true;
    this.log.info({ byMs, deadline: state.deadline }, 'drain command still running near the deadline; asking for more time');
    const answer = await this.forward({ type: 'extend', byMs });
    state.extending = false;
    if (!active()) return;
    if (typeof answer === 'string') {
      const retryMs = Math.min(this.intervalMs, EXTEND_RETRY_MAX_MS);
      this.log.warn({ problem: answer, retryMs }, 'drain extension not answered; retrying');
      this.scheduleExtendCheck(state, this.clock.nowMs() + retryMs);
      return;
    }
    if (!answer.ok) {
      state.extendStopped = true;
      this.log.warn({ message: answer.message, deadline: state.deadline }, 'drain extension refused by the server; not asking again');
      return;
    }
    const after = answer.drainDeadline === undefined ? undefined : parseMs(answer.drainDeadline);
    if (after === undefined || after <= before) {
      state.extendStopped = true;
      this.log.warn({ deadline: state.deadline }, 'drain deadline at its limit; not asking again (the drain command is killed at the deadline)');
      return;
    }
    this.scheduleExtendCheck(state);
  }

  // ---- self-service --------------------------------------------------------------------------

  private async handleSelf(req: SelfRequest): Promise<SelfResponse> {
    if (req.op === 'status') return this.selfStatus();
    const msg: Forwardable = req.op === 'protect' ? { type: 'protect', forMs: req.forMs } : req.op === 'extend' ? { type: 'extend', byMs: req.byMs } : { type: 'unprotect' };
    const answer = await this.forward(msg);
    if (typeof answer === 'string') {
      this.log.warn({ op: req.op, problem: answer }, 'self-service request not answered');
      return { ok: false, message: answer };
    }
    this.log.info({ op: req.op, ok: answer.ok, message: answer.message }, 'self-service request answered');
    return {
      ok: answer.ok,
      message: answer.message,
      ...(answer.drainDeadline !== undefined ? { drainDeadline: answer.drainDeadline } : {}),
      ...(answer.protectedUntil !== undefined ? { protectedUntil: answer.protectedUntil } : {}),
    };
  }

  private selfStatus(): SelfResponse {
    const connected = this.welcomed && this.ws !== undefined;
    const drain = this.drain;
    const parts = [connected ? 'connected to the Drover server' : NOT_CONNECTED];
    parts.push(drain ? `draining (${drain.reason}) until ${drain.deadline}` : 'not draining');
    const until = this.protectedUntil;
    if (until === null) parts.push('not protected');
    else if (until !== undefined) parts.push(((parseMs(until) ?? 0) > this.clock.nowMs() ? 'protected until ' : 'protection ended at ') + until);
    return {
      ok: true,
      message: parts.join('; '),
      connected,
      draining: drain !== undefined,
      ...(drain ? { drainReason: drain.reason, drainDeadline: drain.deadline } : {}),
      ...(until !== undefined ? { protectedUntil: until } : {}),
    };
  }

  /** Sends `msg` with a fresh requestId; resolves with the server's result, or why there is none. */
  private forward(msg: Forwardable): Promise<ServerResult | string> {
    if (this.ending) return Promise.resolve('the agent is stopping');
    const requestId = randomUUID();
    if (!this.send({ ...msg, requestId })) return Promise.resolve(NOT_CONNECTED);
    const timeoutMs = this.options.selfRequestTimeoutMs ?? 10_000;
    return new Promise((resolve) => {
      const timer = this.clock.schedule(this.clock.nowMs() + timeoutMs, () => {
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

  private onResult(msg: ServerResult): void {
    if (msg.protectedUntil !== undefined) this.protectedUntil = msg.protectedUntil;
    if (msg.drainDeadline !== undefined && this.drain) this.setDrainDeadline(this.drain, msg.drainDeadline);
    const settle = this.pending.get(msg.requestId);
    if (!settle) {
      this.log.debug({ requestId: msg.requestId }, 'result for an unknown or expired request');
      return;
    }
    settle(msg);
  }

  /** Answers every waiting forwarded request with `reason`. */
  private failPending(reason: string): void {
    for (const settle of [...this.pending.values()]) settle(reason);
  }

  private sendDrainAck(): void {
    if (this.send({ type: 'drainAck' })) {
      this.drainAckPending = false;
      this.log.info({}, 'drain acknowledged');
    } else {
      this.drainAckPending = true;
    }
  }

  // ---- pid file ------------------------------------------------------------------------------

  private writePidFile(path: string): void {
    const tmp = `${path}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, `${process.pid}\n`);
      renameSync(tmp, path);
    } catch (err) {
      this.log.error({ path, err: errorMessage(err) }, 'writing the pid file failed');
    }
  }

  private removePidFile(path: string): void {
    try {
      if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
    } catch {
      // absent: nothing to remove
    }
  }
}

/** Epoch ms of an ISO time, or undefined when it does not parse. */
function parseMs(iso: string): number | undefined {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The `terminateAt` of a notice file as ISO text, or undefined when absent or invalid. */
function readNoticeFile(path: string): string | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (!raw || typeof raw !== 'object') return undefined;
  const at = (raw as Record<string, unknown>).terminateAt;
  if (typeof at !== 'string') return undefined;
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}
