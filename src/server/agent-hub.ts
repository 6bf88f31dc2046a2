/**
 * AgentHub: the server end of agent connections (WebSocket at /v1/agent).
 *
 * - Authenticates the upgrade (instance id header + per-instance credential); refuses unknown
 *   credentials (401) and deleted instances (403); an instance not known yet gets 503 (retry).
 * - HA: a replica that does not lead refuses agents with 503 and X-Drover-Leader.
 * - Records each health report (`healthAt`, server time) and counts it: through `HealthIngest`,
 *   one transaction per tick (group commit), flushed when the hub closes or lets its agents go.
 * - Forwards termination notices and drain acknowledgements to the reconciler, and rebalance
 *   recommendations (`rebalance`) to `onRebalance`.
 * - A connection that drops without a goodbye enqueues `CheckInstance` with cause "disconnect"
 *   and `preventDuplicate`, so the reconciler asks the provider and re-polls.
 * - Delivers drain notices: at once when connected, and again whenever the agent (re)connects
 *   while its instance drains.
 * - Liveness: the hub visits every connection once per health interval. A connection heard from
 *   since its last visit (a message or a pong) is alive; one not heard from is pinged and becomes
 *   a suspect until it is heard from again. A suspect not heard from for more than
 *   AGENT_PING_MISSES intervals (a stopped process) is terminated at the next step of the sweep
 *   (every interval / PING_SLOTS), which counts as a disconnect: just over AGENT_PING_MISSES
 *   intervals after it was last heard from (or connected), within the ping timeout of
 *   AGENT_PING_MISSES + 1 with an interval to spare for a busy event loop. Measured on the clock,
 *   not in visits, so a sweep delayed by a busy loop does not stretch it.
 * - Pings: a connection that sent a message (a report) since its last visit is pinged at every
 *   other visit only (its reports already say it is there), so that a reporting agent costs the
 *   hub one ping every two intervals instead of one each; it still hears the server at least
 *   every 2 intervals, within the agent's silence limit (max(2.5 intervals, 3 s), connection.ts).
 *   An agent that announced HEARTBEAT_HEADER gets an unsolicited pong there instead, which it does
 *   not answer: the hub has no answer to read (a thousand reads a second at 10,000 agents). Any
 *   other connection (heard from only by answering pings: an unhealthy instance's agent sends no
 *   reports; or not heard from) is pinged at every visit, so that an answering one is heard from
 *   every interval, an interval clear of the AGENT_PING_MISSES limit. On loopback each ping is a
 *   socket write that also runs the peer's receive path; at 10,000 agents the pings were a fifth
 *   of the hub's time.
 * - One sweep timer serves every connection (`PING_SLOTS` below), not a timer per connection: at
 *   10,000 agents that is 10 wake-ups a second instead of 2,000 timers armed and fired, and the
 *   pings go out spread over the interval.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Clock, TimerHandle } from '../clock/index.js';
import { AGENT_PING_MISSES } from '../config/index.js';
import type { AgentCredentials } from '../agent/credentials.js';
import { AGENT_PATH, CLOSE, HEARTBEAT_HEADER, HEARTBEAT_PONG, INSTANCE_HEADER, parseAgentMessage, type AgentMessage, type ServerMessage } from '../agent/protocol.js';
import { EventType, type ReconcileEvent } from '../reconciler/index.js';
import type { Logger } from '../logging/index.js';
import type { InstanceRecord, LocalDb } from '../store/index.js';
import { TokenBucket } from '../util/token-bucket.js';
import { HealthIngest } from './health-ingest.js';

/** Requests (protect, unprotect, extend) one instance may make at once, and per minute after that. */
export const SELF_REQUEST_BURST = 10;
export const SELF_REQUESTS_PER_MINUTE = 10;

/**
 * The ping sweep divides the health interval into this many slots; each connection is placed in
 * one (round robin, so slots stay even) and is pinged when the sweep reaches its slot, once per
 * interval. A slot lasts interval / PING_SLOTS (100 ms at the default 5 s): 10,000 connections
 * make 200 pings per step, a burst of a few ms at most, instead of 2,000 at once.
 */
export const PING_SLOTS = 50;

export interface AgentHubOptions {
  clock: Clock;
  db: LocalDb;
  credentials: AgentCredentials;
  logger: Logger;
  enqueue: (event: ReconcileEvent) => void;
  healthCheckIntervalMs: () => number;
  /** Health reports are recorded only while this is true (a follower leaves health to the leader). */
  recordsHealth?: () => boolean;
  /** Called after each health report is recorded (its tick committed), with the agent's own timestamp of it (`at`), when it sent one. */
  onHealthReport?: (instanceId: string, sentAt: string | undefined) => void;
  /** Group commit of health reports: one transaction per tick of this length (default `HEALTH_TICK_MS`). */
  healthTickMs?: number;
  /** At most this many instances' reports per transaction (default `HEALTH_MAX_BATCH`). */
  healthMaxBatch?: number;
  onReject?: (reason: string) => void;
  /**
   * HA: agents are accepted only while this is true (this replica leads its shard); otherwise
   * the upgrade is refused with 503 and `X-Drover-Leader: <leaderAddress()>`, and the agent
   * moves on to the next server it knows.
   */
  acceptsAgents?: () => boolean;
  leaderAddress?: () => string | null;
  /**
   * The instance's cloud recommends moving work off it (EC2: a rebalance recommendation, an
   * elevated risk of interruption); `noticeTime` is when the cloud issued it. Not a termination
   * notice: nothing is enqueued for the reconciler here.
   */
  onRebalance?: (instanceId: string, noticeTime: Date, where: { tenant: string; group: string }) => void;
  /** Handles a workload's request through its agent (protect, unprotect, extend, launchHook). */
  selfService?: (instanceId: string, request: SelfRequest) => Promise<SelfResult>;
}

export type SelfRequest = Extract<AgentMessage, { type: 'protect' | 'unprotect' | 'extend' | 'launchHook' }>;
export interface SelfResult {
  ok: boolean;
  message: string;
  drainDeadline?: string;
  protectedUntil?: string | null;
}

interface Connection {
  ws: WebSocket;
  instanceId: string;
  tenant: string;
  group: string;
  saidGoodbye: boolean;
  /** Heard from (a message, a pong) since the last visit; true at first (the upgrade is a hearing). */
  heard: boolean;
  /** Sent a message (a report) since the last visit: it is heard from without being asked. */
  sentMessage: boolean;
  /** When it was last heard from (clock ms; its upgrade at first). */
  lastHeardMs: number;
  /** Whether the last visit pinged it. */
  pinged: boolean;
  /** Not heard from at its last visit, and not since: checked at every step of the sweep. */
  suspect: boolean;
  /** Index into `AgentHub.slots`. */
  slot: number;
  /** The agent counts an unsolicited pong as hearing from the server (HEARTBEAT_HEADER). */
  pongHeartbeat: boolean;
}

export class AgentHub {
  // Agents' messages are a few hundred bytes: no compression (its per-connection zlib state costs
  // memory and CPU at 10,000 connections), a small frame limit, and no second set of the clients
  // (the hub keeps its own map).
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false, clientTracking: false });
  private readonly connections = new Map<string, Connection>();
  private closing = false;
  private readonly selfBuckets = new Map<string, TokenBucket>();
  private readonly health: HealthIngest;
  /** The ping sweep's slots: the connections pinged at each of its steps. */
  private readonly slots: Array<Set<Connection>> = Array.from({ length: PING_SLOTS }, () => new Set());
  private nextSlot = 0;
  private sweepIndex = 0;
  /** When the sweep's next step is due (clock ms); undefined while no one is connected. */
  private sweepDueMs: number | undefined;
  private sweeper: TimerHandle | undefined;
  /** Connections not heard from at their last visit (few: stopped agents, ones that only answer pings). */
  private readonly suspects = new Set<Connection>();

  constructor(private readonly options: AgentHubOptions) {
    this.health = new HealthIngest({
      clock: options.clock,
      db: options.db,
      logger: options.logger,
      tickMs: options.healthTickMs,
      maxBatch: options.healthMaxBatch,
      onRecorded: options.onHealthReport,
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  isConnected(instanceId: string): boolean {
    return this.connections.has(instanceId);
  }

  /** Handles an HTTP upgrade. Returns false when the path is not the agent endpoint. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?')[0];
    if (path !== AGENT_PATH) return false;
    const refuse = (code: number, reason: string, message: string, extraHeaders = ''): void => {
      this.options.onReject?.(reason);
      this.options.logger.warn({ reason, instanceId: header(req, INSTANCE_HEADER) }, 'agent connection refused');
      socket.end(`HTTP/1.1 ${code} ${code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : 'Service Unavailable'}\r\nContent-Type: text/plain\r\n${extraHeaders}Connection: close\r\n\r\n${message}\n`);
    };
    if (this.closing) {
      refuse(503, 'stopping', 'server stopping');
      return true;
    }
    if (this.options.acceptsAgents && !this.options.acceptsAgents()) {
      const leader = this.options.leaderAddress?.() ?? null;
      refuse(503, 'notLeader', `this replica does not lead its shard${leader ? `; the leader is ${leader}` : ''}`, leader && /^[\x21-\x7e]+$/.test(leader) ? `X-Drover-Leader: ${leader}\r\n` : '');
      return true;
    }
    const instanceId = header(req, INSTANCE_HEADER);
    const auth = header(req, 'authorization');
    const credential = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    if (!instanceId || !credential || !this.options.credentials.verify(instanceId, credential)) {
      refuse(401, 'credential', 'unknown instance credential');
      return true;
    }
    const record = this.options.db.getInstance(instanceId);
    if (!record) {
      // Not known here yet (created by another leader, not yet adopted by this one's provider
      // sync): the agent tries again, without counting a refusal.
      refuse(503, 'unknown', `instance ${instanceId} is not known to this server yet`);
      return true;
    }
    if (record.status === 'deleted') {
      refuse(403, 'retired', `instance ${instanceId} is deleted; its credential is no longer valid`);
      return true;
    }
    const pongHeartbeat = header(req, HEARTBEAT_HEADER) === HEARTBEAT_PONG;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, record, pongHeartbeat));
    return true;
  }

  /** Sends a drain notice to the instance's agent, if connected. */
  sendDrain(instanceId: string, reason: string, deadline: Date): boolean {
    const conn = this.connections.get(instanceId);
    if (!conn) return false;
    this.send(conn.ws, { type: 'drain', reason, deadline: deadline.toISOString() });
    return true;
  }

  /** Tells the instance's agent that its drain was cancelled, if connected. */
  sendDrainCancelled(instanceId: string): boolean {
    const conn = this.connections.get(instanceId);
    if (!conn) return false;
    this.send(conn.ws, { type: 'drainCancelled' });
    return true;
  }

  /**
   * Closes every connection without counting them as disconnects, and goes on accepting (HA: a
   * replica that lost leadership sends its agents on to the new leader).
   */
  disconnectAll(reason: string): void {
    for (const conn of this.connections.values()) {
      conn.saidGoodbye = true;
      this.unslot(conn);
      conn.ws.close(CLOSE.serverStopping, reason);
    }
    // What was accepted while leading is written before the agents move on.
    this.health.flush();
    if (this.connections.size > 0) this.options.logger.info({ connections: this.connections.size, reason }, 'agent connections closed');
    this.connections.clear();
  }

  /** Closes every connection (without counting them as disconnects) and stops accepting. */
  async close(): Promise<void> {
    this.closing = true;
    this.health.close();
    for (const conn of this.connections.values()) {
      conn.saidGoodbye = true;
      this.unslot(conn);
      conn.ws.close(CLOSE.serverStopping, 'server stopping');
    }
    this.connections.clear();
    this.sweeper?.cancel();
    this.sweeper = undefined;
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** `record`: the instance as read when its upgrade was accepted (one read per connection). */
  private accept(ws: WebSocket, record: InstanceRecord, pongHeartbeat: boolean): void {
    const { id: instanceId, tenant, group } = record;
    const previous = this.connections.get(instanceId);
    if (previous) {
      previous.saidGoodbye = true; // replaced, not lost
      this.unslot(previous);
      previous.ws.close(CLOSE.superseded, 'superseded by a newer connection');
    }
    const conn: Connection = { ws, instanceId, tenant, group, saidGoodbye: false, heard: true, sentMessage: false, lastHeardMs: this.options.clock.nowMs(), pinged: false, suspect: false, slot: this.nextSlot, pongHeartbeat };
    this.nextSlot = (this.nextSlot + 1) % PING_SLOTS;
    this.connections.set(instanceId, conn);
    const { clock, logger } = this.options;
    logger.info({ instanceId, tenant, group }, 'agent connected');
    this.send(ws, { type: 'welcome', instanceId, healthCheckIntervalMs: this.options.healthCheckIntervalMs(), serverTime: clock.now().toISOString() });
    if (record.status === 'draining' && record.drainDeadline && !record.drainAckedAt) {
      this.send(ws, { type: 'drain', reason: record.drainReason ?? 'drain', deadline: record.drainDeadline.toISOString() });
    }
    ws.on('pong', () => this.heard(conn));
    ws.on('message', (data, isBinary) => {
      this.heard(conn);
      conn.sentMessage = true;
      if (isBinary) return;
      this.onMessage(conn, Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8'));
    });
    ws.on('close', () => this.onClose(conn));
    ws.on('error', (err) => logger.debug({ instanceId, err: err.message }, 'agent connection error'));
    this.slots[conn.slot]!.add(conn);
    this.startSweep();
  }

  private unslot(conn: Connection): void {
    this.slots[conn.slot]!.delete(conn);
    if (conn.suspect) this.suspects.delete(conn);
  }

  private heard(conn: Connection): void {
    conn.heard = true;
    conn.lastHeardMs = this.options.clock.nowMs();
    if (conn.suspect) {
      conn.suspect = false;
      this.suspects.delete(conn);
    }
  }

  /**
   * Arms the sweep's next step (one slot, interval / PING_SLOTS, after the last one was due),
   * unless it is armed or no one is connected. A step that fires late (a busy event loop) runs
   * every slot that fell due meanwhile, up to a whole interval's worth, so each connection is still
   * visited once per interval of clock time, not once per PING_SLOTS wake-ups.
   */
  private startSweep(): void {
    if (this.sweeper || this.closing || this.connections.size === 0) return;
    const { clock } = this.options;
    const stepMs = Math.max(1, this.options.healthCheckIntervalMs() / PING_SLOTS);
    const now = clock.nowMs();
    // Idle (no one connected) or stale: the next step is one slot from now.
    if (this.sweepDueMs === undefined || this.sweepDueMs < now - this.options.healthCheckIntervalMs()) this.sweepDueMs = now + stepMs;
    this.sweeper = clock.schedule(this.sweepDueMs, () => {
      this.sweeper = undefined;
      const at = clock.nowMs();
      const intervalMs = this.options.healthCheckIntervalMs();
      for (let n = 0; n < PING_SLOTS && this.sweepDueMs !== undefined && this.sweepDueMs <= at; n++) {
        this.sweepSlot();
        this.sweepDueMs += stepMs;
      }
      this.dropSilent(at, intervalMs);
      if (this.sweepDueMs !== undefined && this.sweepDueMs <= at) this.sweepDueMs = at + stepMs;
      if (this.connections.size === 0) this.sweepDueMs = undefined;
      this.startSweep();
    });
  }

  /** One step of the sweep: visits the connections of the next slot (see the liveness contract at the top). */
  private sweepSlot(): void {
    const slot = this.slots[this.sweepIndex]!;
    this.sweepIndex = (this.sweepIndex + 1) % PING_SLOTS;
    for (const conn of slot) {
      if (conn.heard && conn.sentMessage) {
        conn.heard = false;
        conn.sentMessage = false;
        // Reporting: it will be heard from unasked. Pinged every other visit only, so that its
        // agent hears the server within 2 intervals; with a heartbeat it need not answer (a pong)
        // where its agent takes one.
        conn.pinged = !conn.pinged;
        if (conn.pinged && conn.pongHeartbeat) conn.ws.pong();
        else if (conn.pinged) conn.ws.ping();
      } else if (conn.heard) {
        // Heard from only by answering a ping (an unhealthy instance's agent sends no reports), or
        // by connecting: pinged at every visit, so that it is heard from at every visit and stays
        // an interval clear of the AGENT_PING_MISSES limit.
        conn.heard = false;
        conn.pinged = true;
        conn.ws.ping();
      } else {
        // Not heard from: a ping, whose answer is what the hub waits for.
        conn.pinged = true;
        if (!conn.suspect) {
          conn.suspect = true;
          this.suspects.add(conn);
        }
        conn.ws.ping();
      }
    }
  }

  /** Terminates the suspects not heard from for more than AGENT_PING_MISSES intervals. */
  private dropSilent(now: number, intervalMs: number): void {
    for (const conn of this.suspects) {
      if (now - conn.lastHeardMs <= AGENT_PING_MISSES * intervalMs) continue;
      this.options.logger.warn({ instanceId: conn.instanceId }, 'agent stopped answering pings');
      this.unslot(conn);
      conn.ws.terminate();
    }
  }

  private onMessage(conn: Connection, text: string): void {
    const msg = parseAgentMessage(text);
    const { clock, logger, enqueue } = this.options;
    if (!msg) {
      this.send(conn.ws, { type: 'error', message: 'unrecognised message' });
      return;
    }
    switch (msg.type) {
      case 'health':
        if (this.options.recordsHealth?.() === false) return;
        this.health.report(conn.instanceId, clock.now(), msg.at);
        return;
      case 'notice':
        logger.info({ instanceId: conn.instanceId, terminateAt: msg.terminateAt }, 'termination notice from agent');
        enqueue({
          type: EventType.TerminationNotice,
          tenant: conn.tenant,
          groupKey: conn.group,
          instanceId: conn.instanceId,
          timestamp: new Date(Date.parse(msg.terminateAt)),
          cause: 'agent',
        });
        return;
      case 'rebalance':
        logger.info({ instanceId: conn.instanceId, noticeTime: msg.noticeTime }, 'rebalance recommendation from agent');
        this.options.onRebalance?.(conn.instanceId, new Date(Date.parse(msg.noticeTime)), { tenant: conn.tenant, group: conn.group });
        return;
      case 'drainAck':
        enqueue({ type: EventType.DrainAcked, tenant: conn.tenant, groupKey: conn.group, instanceId: conn.instanceId, cause: 'agent' });
        return;
      case 'protect':
      case 'unprotect':
      case 'extend':
      case 'launchHook': {
        const answer = (result: SelfResult): void => this.send(conn.ws, { type: 'result', requestId: msg.requestId, ...result });
        if (!this.options.selfService) {
          answer({ ok: false, message: 'this server does not take requests from instances' });
          return;
        }
        if (!this.allowSelfRequest(conn.instanceId)) {
          logger.warn({ instanceId: conn.instanceId, request: msg.type }, 'instance request refused: rate limit');
          answer({ ok: false, message: `too many requests from this instance: at most ${SELF_REQUEST_BURST} at once and ${SELF_REQUESTS_PER_MINUTE} a minute` });
          return;
        }
        this.options
          .selfService(conn.instanceId, msg)
          .then(answer, (err: unknown) => answer({ ok: false, message: err instanceof Error ? err.message : String(err) }));
        return;
      }
      case 'goodbye':
        conn.saidGoodbye = true;
        logger.info({ instanceId: conn.instanceId, reason: msg.reason }, 'agent said goodbye');
        return;
    }
  }

  /** Per instance, protect/unprotect/extend requests are rate-limited (a workload in a loop must not flood the leader). */
  private allowSelfRequest(instanceId: string): boolean {
    const now = this.options.clock.nowMs();
    let bucket = this.selfBuckets.get(instanceId);
    if (!bucket) {
      // Forget the instances whose buckets have refilled: nothing to remember about them.
      if (this.selfBuckets.size > 10_000) for (const [id, b] of this.selfBuckets) if (b.isFull(now)) this.selfBuckets.delete(id);
      bucket = new TokenBucket(SELF_REQUEST_BURST, SELF_REQUESTS_PER_MINUTE / 60, now);
      this.selfBuckets.set(instanceId, bucket);
    }
    return bucket.tryTake(now);
  }

  private onClose(conn: Connection): void {
    this.unslot(conn);
    if (this.connections.get(conn.instanceId) === conn) this.connections.delete(conn.instanceId);
    if (conn.saidGoodbye || this.closing) return;
    this.options.logger.info({ instanceId: conn.instanceId }, 'agent disconnected without goodbye');
    this.options.enqueue({
      type: EventType.CheckInstance,
      tenant: conn.tenant,
      groupKey: conn.group,
      instanceId: conn.instanceId,
      cause: 'disconnect',
      preventDuplicate: true,
      timestamp: this.options.clock.now(),
    });
  }

  private send(ws: WebSocket, msg: ServerMessage): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
