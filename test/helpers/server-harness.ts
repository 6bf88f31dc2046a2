/**
 * Starts a real Drover server (HTTP on 127.0.0.1, real SQLite, real WebSockets) over a
 * SimProvider, with a config file in a temp folder, and offers a small API client and fake
 * agents that speak the real protocol.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger as PinoLogger } from 'pino';
import { stringify } from 'yaml';
import { WebSocket } from 'ws';
import { AgentCredentials } from '../../src/agent/credentials.js';
import type { ServerMessage } from '../../src/agent/protocol.js';
import { startDroverServer, type DroverServer } from '../../src/app/drover-server.js';
import { SimProvider, SystemClock, type Clock } from '../../src/index.js';
import type { LeaderElector } from '../../src/leader/index.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { OpenApiChecker } from './openapi-check.js';

export interface TestServerOptions {
  groups?: Record<string, Record<string, Record<string, unknown>>>;
  shard?: Record<string, unknown>;
  token?: string;
  clock?: Clock;
  dir?: string;
  /** Use this elector instead of the config's (HA tests). */
  elector?: LeaderElector;
  /** The config's `leader` section (its ttl is how long a lost leader keeps its agents). */
  leader?: Record<string, unknown>;
  /** More of the config's `server` section (tokens, allowedHosts, tls, ...). */
  server?: Record<string, unknown>;
  /** The server's logger (default: silent). */
  logger?: PinoLogger;
  /** The provider (default: a SimProvider with seed 7 on the clock). */
  provider?: SimProvider;
  /** The config's `notifications` (webhook endpoints). */
  notifications?: Array<Record<string, unknown>>;
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  headers: Headers;
}

export class TestServer {
  readonly dir: string;
  readonly configPath: string;
  readonly provider: SimProvider;
  server!: DroverServer;
  private readonly clock: Clock;
  /** Every answer `api()` gets is checked against the server's OpenAPI document (openapi-check.ts). */
  private checker: OpenApiChecker | null = null;

  constructor(private options: TestServerOptions = {}) {
    this.dir = options.dir ?? mkdtempSync(join(tmpdir(), 'drover-server-'));
    this.configPath = join(this.dir, 'drover.yaml');
    this.clock = options.clock ?? new SystemClock();
    this.provider = options.provider ?? new SimProvider({ clock: this.clock, seed: 7 });
    this.writeConfig();
  }

  configObject(overrides: Partial<TestServerOptions> = {}): Record<string, unknown> {
    const o = { ...this.options, ...overrides };
    return {
      server: { listen: '127.0.0.1:0', dataDir: join(this.dir, 'data'), ...(o.token ? { token: o.token } : {}), ...o.server },
      provider: { kind: 'sim' },
      shard: { id: 'test', healthCheckInterval: '1s', missedHealthThreshold: 3, startupTimeout: '1m', defaultDrainTimeout: '1m', ...o.shard },
      templates: { web: { image: 'web:1' }, worker: { image: 'worker:1' } },
      groups: o.groups ?? { default: { web: { size: 2, template: 'web', drainTimeout: '1m' } } },
      ...(o.leader ? { leader: o.leader } : {}),
      ...(o.notifications ? { notifications: o.notifications } : {}),
    };
  }

  writeConfig(overrides: Partial<TestServerOptions> = {}): void {
    this.options = { ...this.options, ...overrides };
    writeFileSync(this.configPath, stringify(this.configObject()));
  }

  writeRawConfig(text: string): void {
    writeFileSync(this.configPath, text);
  }

  async start(): Promise<this> {
    this.server = await startDroverServer({ configPath: this.configPath, logger: this.options.logger ?? pino({ level: 'silent' }), clock: this.clock, provider: this.provider, ...(this.options.elector ? { elector: this.options.elector } : {}) });
    // The document `GET /v1/openapi.json` serves, written from the same routes (the route needs a
    // token some tests' servers do not give this client).
    this.checker = new OpenApiChecker(openApiDocument(this.server.routes(), { version: 'test' }));
    return this;
  }

  get url(): string {
    return this.server.url;
  }

  credential(instanceId: string): string {
    return AgentCredentials.fromFile(join(this.dir, 'data', 'agent-secret')).issue(instanceId);
  }

  async api<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const token = this.options.token;
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    this.checker?.assertAnswer(method, path, res.status, res.headers.get('content-type'), parsed);
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  /** Waits until the reconciler has nothing queued, due or in flight. */
  async settle(): Promise<void> {
    await this.server.reconciler.idle();
  }

  async stop(): Promise<void> {
    await this.server?.stop();
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A fake agent speaking the real protocol over a real WebSocket. */
export class FakeAgent {
  readonly messages: ServerMessage[] = [];
  private waiters: Array<{ match: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }> = [];
  closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    readonly instanceId: string,
  ) {
    ws.on('message', (data) => {
      const msg = JSON.parse((data as Buffer).toString('utf8')) as ServerMessage;
      this.messages.push(msg);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(msg)) return true;
        w.resolve(msg);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /**
   * Connects; resolves once the server accepted (or rejects with the HTTP status it refused with).
   * `autoPong: false` makes an agent that never answers pings (a stopped process, seen from the server).
   * `heartbeat: true` announces that it takes unsolicited pongs as heartbeats (as the real agent does).
   */
  static connect(url: string, instanceId: string, credential: string, options: { autoPong?: boolean; heartbeat?: boolean } = {}): Promise<FakeAgent> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { 'X-Drover-Instance': instanceId, Authorization: `Bearer ${credential}` };
      if (options.heartbeat) headers['X-Drover-Heartbeat'] = 'pong';
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/agent`, { headers, autoPong: options.autoPong ?? true });
      const agent = new FakeAgent(ws, instanceId);
      ws.once('open', () => resolve(agent));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with HTTP ${res.statusCode}`)));
      ws.once('error', (err) => reject(err));
    });
  }

  next(match: (m: ServerMessage) => boolean): Promise<ServerMessage> {
    const seen = this.messages.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  health(): void {
    this.send({ type: 'health', at: new Date().toISOString() });
  }

  goodbye(): Promise<{ code: number; reason: string }> {
    this.send({ type: 'goodbye', reason: 'test' });
    this.ws.close(1000);
    return this.closed;
  }

  drop(): Promise<{ code: number; reason: string }> {
    this.ws.terminate();
    return this.closed;
  }
}
