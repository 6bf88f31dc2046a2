/**
 * The agent's connection to a Drover server: one WebSocket at a time, over the configured
 * servers in turn. It owns reaching a server and keeping it; it knows nothing of what the agent
 * says on it. The agent's parts send through `send()` and hear through `ConnectionEvents`.
 *
 * Contracts:
 * - Connecting. Connects to `<server>/v1/agent` (http→ws, https→wss) with `X-Drover-Instance`
 *   and `Authorization: Bearer <credential>`, trying the configured servers in turn. When a
 *   connection drops, fails or is refused, it reconnects to the next server after an exponential
 *   backoff with jitter (`backoffDelayMs`; 250 ms doubling to 10 s by default; reset by a
 *   `welcome`). A server address it cannot use is a failed attempt like any other.
 * - TLS. A wss:// server is verified against `serverCa` when configured, else the system's CAs;
 *   a server that fails verification is a failed connection like any other (logged with the TLS
 *   error, retried with backoff). With `clientCert`/`clientKey` the agent presents that
 *   certificate (servers with `server.tls.clientCa`), re-reading the files at each connection.
 * - HA. A refusal with 503 (a replica that does not lead, an election in progress) is retried
 *   within at most a second, on the server its `X-Drover-Leader` header names when that is one
 *   of the configured servers, else on the next one.
 * - Silence. A connection on which nothing (no message, no ping, no pong) is heard for `serverSilenceMs`
 *   (default max(2.5 × interval, 3 s)) is treated as gone: terminated, then reconnected.
 * - Welcome. A `welcome` sets the health interval (clamped to [10 ms, 24 h]; the configured one
 *   until the first welcome), resets the backoff and the refusal count, and opens the connection
 *   for the parts: `send()` delivers only between a welcome and the close of that connection;
 *   otherwise it sends nothing and returns false. `welcomed` fires after that, `disconnected` at
 *   every close of the current connection (welcomed or not). Every other server message is
 *   passed on in order, as it comes.
 * - Refusals. HTTP 401 (credential refused) and 403 (instance deleted or unknown), and close code
 *   4403 (deleted), are logged as such; after `maxRefusals` consecutive refusals the connection
 *   stops trying and fires `gaveUp` (the agent then ends with exit code 2 or 3).
 * - Close. `close(goodbye)` stops reconnecting; an open connection is sent `goodbye` (when a
 *   reason is given) and closed with 1000, and is terminated if the server has not closed it
 *   within 2 s. A connection still opening is terminated.
 */
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../clock/index.js';
import { InternalError, errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { backoffDelayMs } from '../util/backoff.js';
import type { AgentConfig } from './config.js';
import { AGENT_PATH, CLOSE, HEARTBEAT_HEADER, HEARTBEAT_PONG, INSTANCE_HEADER, parseServerMessage, type AgentMessage, type ServerMessage } from './protocol.js';

const MIN_INTERVAL_MS = 10;
const MAX_INTERVAL_MS = 24 * 3_600_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long `close()` waits for the server to answer the close before terminating. */
const CLOSE_WAIT_MS = 2_000;
/** After a 503 the next attempt waits at most this long (HA contract). */
const UNAVAILABLE_RETRY_MAX_MS = 1_000;

/** What the server says on a connection besides the welcome, which the connection handles itself. */
export type SessionMessage = Exclude<ServerMessage, { type: 'welcome' }>;

/** Why the connection gave up: the credential was refused (401), or the instance is deleted (403, close 4403). */
export type Refusal = 'credential' | 'deleted';

/** How the connection tells the agent what happens. Called synchronously, never after `close()`. */
export interface ConnectionEvents {
  /** A server welcomed the agent; `send()` works from now until `disconnected`. */
  welcomed(intervalMs: number): void;
  /** Any other server message, in order. */
  message(msg: SessionMessage): void;
  /** The current connection closed (welcomed or not); a reconnect follows unless the connection gives up. */
  disconnected(): void;
  /** `maxRefusals` consecutive refusals: the connection no longer tries. */
  gaveUp(refusal: Refusal): void;
}

/** What a connection reads of the agent config; `credential` may instead be given to `start()` (a bootstrapped agent's). */
export type ConnectionConfig = Pick<AgentConfig, 'instanceId' | 'servers' | 'credential' | 'healthCheckIntervalMs' | 'serverCa' | 'clientCert' | 'clientKey'>;

export interface ConnectionOptions {
  config: ConnectionConfig;
  clock: Clock;
  logger: Logger;
  events: ConnectionEvents;
  /** The WebSocket client class (tests may pass a wrapper). Default: `ws`'s WebSocket. */
  WebSocketImpl?: typeof WebSocket;
  /** Random source for the backoff's jitter. */
  random: () => number;
  /** First reconnect delay; doubles per failed attempt up to `reconnectMaxMs`. Default 250. */
  reconnectInitialMs?: number;
  /** Default 10 000. */
  reconnectMaxMs?: number;
  /** Consecutive refusals (401/403/close 4403) before giving up. Default 8. */
  maxRefusals?: number;
  /** Default max(2.5 × interval, 3 s). */
  serverSilenceMs?: number;
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

/** What a wss:// connection adds to ws's options. */
interface AgentTlsOptions {
  rejectUnauthorized?: true;
  ca?: string;
  cert?: Buffer;
  key?: Buffer;
}

/** What one connection attempt learned before it closed, to tell why it closed. */
interface Attempt {
  url: string;
  /** The HTTP status of a refused upgrade. */
  refusedStatus?: number;
  /** The refusing server's `X-Drover-Leader`. */
  leaderHint?: string;
  lastError?: string;
  opened: boolean;
}

export class ServerConnection {
  private ws: WebSocket | undefined;
  /** Increases with every connection attempt (and at close); callbacks of older attempts are ignored. */
  private generation = 0;
  private welcomed = false;
  private closed = false;
  private serverIndex = 0;
  private failures = 0;
  private refusals = 0;
  private interval: number;
  private lastHeardMs = 0;
  private reconnectTimer: TimerHandle | undefined;
  private silenceTimer: TimerHandle | undefined;
  private credential = '';

  constructor(private readonly options: ConnectionOptions) {
    this.interval = options.config.healthCheckIntervalMs;
  }

  /** The health interval the last welcome set (the configured one before any). */
  get intervalMs(): number {
    return this.interval;
  }

  /** Welcomed on an open connection: what is sent now reaches the server. */
  get connected(): boolean {
    return this.welcomed && this.ws !== undefined;
  }

  /** Makes the first attempt, presenting `credential` (default: the config's). */
  start(credential = this.options.config.credential): void {
    if (credential === undefined || credential === '') throw new InternalError('starting the agent connection: no credential (neither in the config nor given)');
    this.credential = credential;
    const plain = this.options.config.servers.filter((s) => !s.startsWith('https:'));
    const { serverCa, clientCert } = this.options.config;
    if ((serverCa !== undefined || clientCert !== undefined) && plain.length > 0) {
      this.options.logger.warn({ servers: plain }, 'TLS settings given but some servers are not https://: those connections are not encrypted');
    }
    this.connect();
  }

  /** Sends `msg` when welcomed on an open connection; false (nothing sent) otherwise. */
  send(msg: AgentMessage): boolean {
    const ws = this.ws;
    if (!ws || !this.welcomed || ws.readyState !== ws.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /** Stops for good: no more attempts or events; says `goodbye` (if given) and closes the open connection. */
  async close(goodbye?: string): Promise<void> {
    this.closed = true;
    this.reconnectTimer?.cancel();
    this.silenceTimer?.cancel();
    const ws = this.ws;
    this.ws = undefined;
    this.generation++;
    this.welcomed = false;
    if (ws) await this.closeSocket(ws, goodbye);
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
    const outcome = await Promise.race([closed.then(() => 'closed' as const), this.options.clock.sleep(CLOSE_WAIT_MS).then(() => 'timeout' as const)]);
    if (outcome === 'timeout') ws.terminate();
  }

  private connect(): void {
    if (this.closed) return;
    const server = this.options.config.servers[this.serverIndex % this.options.config.servers.length] ?? '';
    const gen = ++this.generation;
    const opened = this.open(server);
    if (!opened) {
      this.afterFailure(gen);
      return;
    }
    this.ws = opened.ws;
    this.watch(opened.ws, gen, opened.url);
  }

  /** A WebSocket on its way to `server`, or undefined (logged) when none can be made. */
  private open(server: string): { ws: WebSocket; url: string } | undefined {
    const log = this.options.logger;
    let url: string;
    try {
      url = agentUrl(server);
    } catch (err) {
      log.error({ server, err: errorMessage(err) }, 'invalid server address');
      return undefined;
    }
    let tls: AgentTlsOptions;
    try {
      tls = url.startsWith('wss:') ? this.tlsOptions() : {};
    } catch (err) {
      log.error({ url, err: errorMessage(err) }, 'reading the agent client certificate failed');
      return undefined;
    }
    try {
      log.debug({ url }, 'connecting to server');
      const WS = this.options.WebSocketImpl ?? WebSocket;
      const { instanceId } = this.options.config;
      const ws = new WS(url, { headers: { [INSTANCE_HEADER]: instanceId, [HEARTBEAT_HEADER]: HEARTBEAT_PONG, authorization: `Bearer ${this.credential}` }, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, ...tls });
      return { ws, url };
    } catch (err) {
      log.error({ server, err: errorMessage(err) }, 'invalid server address');
      return undefined;
    }
  }

  /**
   * TLS options of a wss:// connection: the server is verified against `serverCa` when given
   * (else the system's CAs; never unverified), and the client certificate, when configured, is
   * read now so that a rotated one is used from this connection on.
   */
  private tlsOptions(): AgentTlsOptions {
    const { serverCa, clientCert, clientKey } = this.options.config;
    const options: AgentTlsOptions = { rejectUnauthorized: true };
    if (serverCa !== undefined) options.ca = serverCa;
    if (clientCert !== undefined && clientKey !== undefined) {
      options.cert = readFileSync(clientCert);
      options.key = readFileSync(clientKey);
    }
    return options;
  }

  /** Follows attempt `gen` on `ws` until it closes. */
  private watch(ws: WebSocket, gen: number, url: string): void {
    const { clock, logger } = this.options;
    const attempt: Attempt = { url, opened: false };
    ws.on('unexpected-response', (_req, res) => {
      attempt.refusedStatus = res.statusCode;
      const hint = res.headers['x-drover-leader'];
      attempt.leaderHint = Array.isArray(hint) ? hint[0] : hint;
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      if (gen !== this.generation) return;
      attempt.opened = true;
      this.lastHeardMs = clock.nowMs();
      this.armSilenceCheck(gen);
      logger.debug({ url }, 'connected; waiting for welcome');
    });
    // A ping, or a pong the server sends unasked as a heartbeat (HEARTBEAT_HEADER), is a hearing.
    ws.on('ping', () => {
      this.lastHeardMs = clock.nowMs();
    });
    ws.on('pong', () => {
      this.lastHeardMs = clock.nowMs();
    });
    ws.on('message', (data, isBinary) => {
      if (gen !== this.generation || isBinary) return;
      this.lastHeardMs = clock.nowMs();
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
      const msg = parseServerMessage(text);
      if (!msg) {
        logger.warn({ length: text.length }, 'unrecognised message from server');
        return;
      }
      if (msg.type === 'welcome') this.onWelcome(gen, msg);
      else this.options.events.message(msg);
    });
    ws.on('error', (err) => {
      attempt.lastError = err.message;
    });
    ws.on('close', (code, reasonBuf) => this.onClose(gen, attempt, code, reasonBuf.toString('utf8')));
  }

  private onWelcome(gen: number, msg: Extract<ServerMessage, { type: 'welcome' }>): void {
    const { config, logger } = this.options;
    if (msg.instanceId !== config.instanceId) logger.warn({ serverInstanceId: msg.instanceId }, 'welcome names another instance');
    const interval = Number.isFinite(msg.healthCheckIntervalMs) ? msg.healthCheckIntervalMs : config.healthCheckIntervalMs;
    this.interval = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, Math.round(interval)));
    this.welcomed = true;
    this.failures = 0;
    this.refusals = 0;
    logger.info({ healthCheckIntervalMs: this.interval }, 'connected to server');
    this.armSilenceCheck(gen);
    this.options.events.welcomed(this.interval);
  }

  private onClose(gen: number, attempt: Attempt, code: number, reason: string): void {
    if (gen !== this.generation) return;
    const log = this.options.logger;
    const { url, refusedStatus } = attempt;
    const wasWelcomed = this.welcomed;
    this.ws = undefined;
    this.welcomed = false;
    this.silenceTimer?.cancel();
    this.options.events.disconnected();
    if (refusedStatus === 401 || refusedStatus === 403 || code === CLOSE.deleted) {
      const status = refusedStatus ?? 403;
      this.refusals++;
      if (status === 401) log.error({ url, status, refusals: this.refusals }, 'server refused the agent credential');
      else log.error({ url, status, code, refusals: this.refusals }, 'server says this instance is deleted or unknown');
      if (this.refusals >= (this.options.maxRefusals ?? 8)) {
        this.closed = true;
        this.options.events.gaveUp(status === 401 ? 'credential' : 'deleted');
        return;
      }
    } else if (refusedStatus !== undefined) {
      log.warn({ url, status: refusedStatus }, 'server refused the agent connection');
    } else if (wasWelcomed) {
      log.warn({ url, code, reason }, 'connection to server lost');
    } else if (attempt.opened) {
      log.warn({ url, code, reason }, 'connection closed before welcome');
    } else {
      log.warn({ url, err: attempt.lastError }, 'could not connect to server');
    }
    if (code === CLOSE.superseded) log.warn({ url }, 'connection superseded by another connection for this instance');
    this.afterFailure(gen, refusedStatus === 503 ? { leader: attempt.leaderHint } : undefined);
  }

  /**
   * Schedules the next attempt on the next server, after the backoff. After a 503 (not the
   * leader, or no leader yet) the next attempt goes to the named leader if it is a configured
   * server, and waits at most a second.
   */
  private afterFailure(gen: number, unavailable?: { leader: string | undefined }): void {
    if (this.closed || gen !== this.generation) return;
    const { servers } = this.options.config;
    const strip = (u: string): string => u.replace(/\/+$/, '');
    const hinted = unavailable?.leader ? servers.findIndex((s) => strip(s) === strip(unavailable.leader ?? '')) : -1;
    this.serverIndex = hinted >= 0 ? hinted : (this.serverIndex + 1) % servers.length;
    const initialMs = this.options.reconnectInitialMs ?? 250;
    const maxMs = Math.min(this.options.reconnectMaxMs ?? 10_000, unavailable ? UNAVAILABLE_RETRY_MAX_MS : Number.POSITIVE_INFINITY);
    const delayMs = backoffDelayMs({ initialMs, maxMs, jitter: 0.5, mode: 'below' }, this.failures, this.options.random);
    this.failures++;
    this.options.logger.debug({ delayMs, attempt: this.failures }, 'reconnecting after backoff');
    const { clock } = this.options;
    this.reconnectTimer = clock.schedule(clock.nowMs() + delayMs, () => {
      this.reconnectTimer = undefined;
      this.connect();
    });
  }

  private armSilenceCheck(gen: number): void {
    const { clock } = this.options;
    this.silenceTimer?.cancel();
    const limit = this.options.serverSilenceMs ?? Math.max(2.5 * this.interval, 3_000);
    const checkEvery = Math.max(MIN_INTERVAL_MS, Math.min(this.interval, limit));
    this.silenceTimer = clock.schedule(clock.nowMs() + checkEvery, () => {
      if (gen !== this.generation || !this.ws) return;
      const silentMs = clock.nowMs() - this.lastHeardMs;
      if (silentMs > limit) {
        this.options.logger.warn({ silentMs }, 'server silent; reconnecting');
        this.ws.terminate();
        return;
      }
      this.armSilenceCheck(gen);
    });
  }
}
