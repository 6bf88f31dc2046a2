/**
 * Stand-ins for agent tests: a Drover server that speaks the agent protocol and records what it
 * hears, and a logger that records lines and lets a test await one.
 */
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Agent } from '../../src/agent/agent.js';
import { parseAgentMessage, type AgentMessage, type ServerMessage } from '../../src/agent/protocol.js';
import { processesWithEnv } from '../../src/providers/local/proc.js';
import type { Logger } from '../../src/logging/index.js';

export const INSTANCE = `i-agenttest-${process.pid}`;
export const CREDENTIAL = 'cred-123';

export interface Received {
  conn: number;
  msg: AgentMessage;
  at: number;
}

/** A stand-in Drover server: accepts (or refuses) agent upgrades, records messages. */
export class TestServer extends EventEmitter {
  readonly http: Server;
  readonly wss = new WebSocketServer({ noServer: true });
  readonly received: Received[] = [];
  readonly upgrades: { headers: IncomingMessage['headers']; url: string | undefined; at: number }[] = [];
  readonly sockets: WebSocket[] = [];
  readonly closes: { conn: number; code: number }[] = [];
  /** Answer upgrades with this HTTP status instead of accepting. */
  refuseWith: number | undefined;
  /** Sent in the welcome. */
  intervalMs = 50;
  sendWelcome = true;

  constructor() {
    super();
    this.http = createServer((_req, res) => res.writeHead(404).end());
    this.http.on('upgrade', (req: IncomingMessage, socket, head) => {
      this.upgrades.push({ headers: req.headers, url: req.url, at: Date.now() });
      this.emit('upgrade');
      if (this.refuseWith !== undefined) {
        socket.end(`HTTP/1.1 ${this.refuseWith} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }

  private accept(ws: WebSocket): void {
    const conn = this.sockets.push(ws) - 1;
    ws.on('message', (data: Buffer) => {
      const msg = parseAgentMessage(data.toString('utf8'));
      if (!msg) throw new Error(`bad agent message ${data.toString('utf8')}`);
      this.received.push({ conn, msg, at: Date.now() });
      this.emit('message', conn, msg);
    });
    ws.on('close', (code) => {
      this.closes.push({ conn, code });
      this.emit('close', conn, code);
    });
    this.emit('connection', conn);
    if (this.sendWelcome) this.send(conn, { type: 'welcome', instanceId: INSTANCE, healthCheckIntervalMs: this.intervalMs, serverTime: new Date().toISOString() });
  }

  send(conn: number, msg: ServerMessage): void {
    this.sockets[conn]!.send(JSON.stringify(msg));
  }

  get last(): number {
    return this.sockets.length - 1;
  }

  of(type: AgentMessage['type']): Received[] {
    return this.received.filter((r) => r.msg.type === type);
  }

  /** Resolves with the next message matching `pred` (also one already received after `from`). */
  nextMessage(pred: (msg: AgentMessage, conn: number) => boolean, from = this.received.length): Promise<Received> {
    const seen = this.received.slice(from).find((r) => pred(r.msg, r.conn));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const on = (conn: number, msg: AgentMessage): void => {
        if (!pred(msg, conn)) return;
        this.off('message', on);
        resolve(this.received[this.received.length - 1]!);
      };
      this.on('message', on);
    });
  }

  /** Resolves once `n` messages matching `pred` have been received in all. */
  async count(pred: (msg: AgentMessage) => boolean, n: number): Promise<void> {
    while (this.received.filter((r) => pred(r.msg)).length < n) {
      await new Promise((resolve) => this.once('message', resolve));
    }
  }

  nextConnection(): Promise<number> {
    return new Promise((resolve) => this.once('connection', resolve));
  }

  nextClose(): Promise<{ conn: number; code: number }> {
    return new Promise((resolve) => this.once('close', (conn: number, code: number) => resolve({ conn, code })));
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

export interface LogLine {
  level: string;
  msg: string;
  obj: object;
}

/** A logger that records lines and lets a test await one. */
export class TestLogger extends EventEmitter implements Logger {
  readonly lines: LogLine[] = [];
  debug(obj: object, msg = ''): void {
    this.add('debug', obj, msg);
  }
  info(obj: object, msg = ''): void {
    this.add('info', obj, msg);
  }
  warn(obj: object, msg = ''): void {
    this.add('warn', obj, msg);
  }
  error(obj: object, msg = ''): void {
    this.add('error', obj, msg);
  }
  private add(level: string, obj: object, msg: string): void {
    const line = { level, obj, msg };
    this.lines.push(line);
    this.emit('line', line);
  }
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }
  /** Resolves when a line with message `msg` is logged (counting from now). */
  next(msg: string): Promise<LogLine> {
    return new Promise((resolve) => {
      const on = (line: LogLine): void => {
        if (line.msg !== msg) return;
        this.off('line', on);
        resolve(line);
      };
      this.on('line', on);
    });
  }
}


/** Ends a test's agents, closes its server, kills any process left with the test instance's id, and removes its folder. */
export async function tearDownAgentTest(agents: Agent[], server: TestServer, dir: string): Promise<void> {
  for (const a of agents.splice(0)) await a.stop('test over');
  await server.close();
  for (const p of processesWithEnv('DROVER_INSTANCE_ID', INSTANCE)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
