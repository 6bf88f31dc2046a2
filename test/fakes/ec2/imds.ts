/**
 * A fake instance metadata service (IMDSv2, tokens required) serving many instances from one
 * loopback server. Each instance has its own base URL, `endpointFor(id)` =
 * `http://127.0.0.1:<port>/<id>`, under which the agent finds the usual paths
 * (`/latest/api/token`, `/latest/meta-data/…`), as it would under http://169.254.169.254 on
 * the instance itself.
 *
 * As AWS documents IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
 * (1–21600) answers a token (text/plain, the TTL echoed in the same header); a PUT with
 * `X-Forwarded-For` is refused (403), a missing or bad TTL is 400; every GET needs a valid,
 * unexpired token of that instance in `X-aws-ec2-metadata-token`, else 401; an item that is not
 * there is 404 — notably `spot/instance-action` and `events/recommendations/rebalance` until a
 * notice is set. Token expiry runs on the injected clock.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LoopbackServer } from '../loopback.js';

export interface FakeImdsOptions {
  /** The clock (ms since the epoch); default `Date.now`. Token expiry reads only this. */
  now?: () => number;
}

export interface ImdsInstance {
  /** Default 'eu-central-1a'. */
  az?: string;
  instanceType?: string;
  amiId?: string;
  /** What `instance-life-cycle` answers; default 'on-demand'. */
  lifecycle?: 'on-demand' | 'spot';
}

export type SpotAction = 'terminate' | 'stop' | 'hibernate';

export interface ImdsRequest {
  /** The fake's clock when the request arrived. */
  at: number;
  method: string;
  instanceId: string;
  /** The path under the instance's base URL, e.g. '/latest/meta-data/instance-id'. */
  path: string;
  status: number;
  /** For a GET: whether it carried a valid token of this instance. Absent for token requests. */
  tokenOk?: boolean;
}

interface InstanceState {
  az: string;
  instanceType: string;
  amiId: string;
  lifecycle: 'on-demand' | 'spot';
  spotAction?: { action: SpotAction; time: string };
  rebalance?: string;
}

export const TOKEN_PATH = '/latest/api/token';
export const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const MAX_TTL = 21_600;

/** IMDS times are UTC to the second: 2026-12-06T10:00:00Z. */
function imdsTime(time: string | number | Date): string {
  if (typeof time === 'string') return time;
  return `${new Date(time).toISOString().slice(0, 19)}Z`;
}

export class FakeImds {
  /** Every request, in arrival order. */
  readonly requests: ImdsRequest[] = [];

  private readonly now: () => number;
  private readonly instances = new Map<string, InstanceState>();
  private readonly tokens = new Map<string, { instanceId: string; expiresAt: number }>();
  private readonly http = new LoopbackServer('FakeImds', (req, res) => this.onRequest(req, res));

  constructor(options: FakeImdsOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** Listens on 127.0.0.1 (an ephemeral port); answers the server's base, `http://127.0.0.1:<port>`. */
  async start(): Promise<string> {
    return this.http.start();
  }

  get base(): string {
    return this.http.origin;
  }

  /** The instance's IMDS base URL, standing in for http://169.254.169.254 (the agent appends /latest/…). */
  endpointFor(instanceId: string): string {
    return `${this.base}/${encodeURIComponent(instanceId)}`;
  }

  async close(): Promise<void> {
    await this.http.close();
  }

  /** Serves metadata for an instance (again: its notices are cleared). */
  addInstance(instanceId: string, info: ImdsInstance = {}): void {
    this.instances.set(instanceId, {
      az: info.az ?? 'eu-central-1a',
      instanceType: info.instanceType ?? 't3.micro',
      amiId: info.amiId ?? 'ami-0abcdef1234567890',
      lifecycle: info.lifecycle ?? 'on-demand',
    });
  }

  /** Stops serving an instance (its requests get 404) and forgets its tokens. */
  removeInstance(instanceId: string): void {
    this.instances.delete(instanceId);
    for (const [token, t] of this.tokens) if (t.instanceId === instanceId) this.tokens.delete(token);
  }

  /** Makes `spot/instance-action` answer `{"action":…,"time":…}`; a number or Date is written as IMDS writes times. */
  setSpotAction(instanceId: string, notice: { action: SpotAction; time: string | number | Date }): void {
    this.mustInstance(instanceId).spotAction = { action: notice.action, time: imdsTime(notice.time) };
  }

  /** Makes `events/recommendations/rebalance` answer `{"noticeTime":…}`. */
  setRebalance(instanceId: string, noticeTime: string | number | Date): void {
    this.mustInstance(instanceId).rebalance = imdsTime(noticeTime);
  }

  /** Withdraws both notices (the items answer 404 again). */
  clear(instanceId: string): void {
    const state = this.mustInstance(instanceId);
    delete state.spotAction;
    delete state.rebalance;
  }

  private mustInstance(instanceId: string): InstanceState {
    const state = this.instances.get(instanceId);
    if (!state) throw new Error(`FakeImds: no instance ${instanceId}`);
    return state;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    req.on('end', () => {
      const { status, body, headers, record } = this.answer(req);
      this.requests.push(record);
      res.writeHead(status, { 'content-type': 'text/plain', server: 'EC2ws', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    req.on('error', () => res.destroy());
  }

  private answer(req: IncomingMessage): { status: number; body: string; headers: Record<string, string>; record: ImdsRequest } {
    const method = req.method ?? 'GET';
    const at = this.now();
    const url = new URL(req.url ?? '/', 'http://imds.invalid');
    const match = /^\/([^/]+)(\/.*)?$/.exec(url.pathname);
    const instanceId = match ? decodeURIComponent(match[1]!) : '';
    const path = match?.[2] ?? '/';
    const reply = (status: number, body = '', extra: Partial<ImdsRequest> = {}, headers: Record<string, string> = {}) => ({
      status,
      body: body === '' && status !== 200 ? `${status}` : body,
      headers,
      record: { at, method, instanceId, path, status, ...extra },
    });

    const instance = this.instances.get(instanceId);
    if (!instance) return reply(404);

    if (method === 'PUT') {
      // Only /latest/api/token takes a PUT; AWS answers 403 for a PUT to any other token path.
      if (path !== TOKEN_PATH) return reply(403);
      if (req.headers['x-forwarded-for'] !== undefined) return reply(403);
      const ttlText = req.headers[TTL_HEADER];
      const ttl = typeof ttlText === 'string' && /^\d+$/.test(ttlText) ? Number(ttlText) : NaN;
      if (!(ttl >= 1 && ttl <= MAX_TTL)) return reply(400);
      const token = randomBytes(42).toString('base64');
      this.tokens.set(token, { instanceId, expiresAt: at + ttl * 1000 });
      return reply(200, token, {}, { [TTL_HEADER]: String(ttl) });
    }
    if (method !== 'GET' && method !== 'HEAD') return reply(405);
    if (path === TOKEN_PATH) return reply(405);

    const tokenText = req.headers[TOKEN_HEADER];
    const token = typeof tokenText === 'string' ? this.tokens.get(tokenText) : undefined;
    const tokenOk = token !== undefined && token.instanceId === instanceId && at < token.expiresAt;
    if (!tokenOk) return reply(401, '', { tokenOk });

    const item = this.item(instanceId, instance, path);
    return item === undefined ? reply(404, '', { tokenOk }) : reply(200, item, { tokenOk });
  }

  private item(instanceId: string, s: InstanceState, path: string): string | undefined {
    switch (path) {
      case '/latest/meta-data/instance-id':
        return instanceId;
      case '/latest/meta-data/placement/availability-zone':
        return s.az;
      case '/latest/meta-data/instance-type':
        return s.instanceType;
      case '/latest/meta-data/ami-id':
        return s.amiId;
      case '/latest/meta-data/instance-life-cycle':
        return s.lifecycle;
      case '/latest/meta-data/spot/instance-action':
        return s.spotAction ? JSON.stringify({ action: s.spotAction.action, time: s.spotAction.time }) : undefined;
      case '/latest/meta-data/events/recommendations/rebalance':
        return s.rebalance !== undefined ? JSON.stringify({ noticeTime: s.rebalance }) : undefined;
      default:
        return undefined;
    }
  }
}
