/**
 * A thin, typed client for the Hetzner Cloud API on `fetch`, for exactly the endpoints Drover
 * uses: servers (create, get, list by label selector or name, delete, update labels) and actions.
 * No maintained JavaScript client exists (the `hcloud-js` package is stale).
 *
 * Contracts:
 * - Every answer is validated (zod) where it enters; a body that does not match is a retryable
 *   ProviderError naming the endpoint, never a crash later.
 * - A refusal is an HcloudError with Hetzner's error code (`{ "error": { "code", "message" } }`),
 *   its HTTP status and the endpoint; `mapHcloudError` reads it into Drover's catalogue.
 * - Every answer's rate-limit headers (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`:
 *   unix seconds when the budget is full again) are passed to `onRateLimit`, so the caller can
 *   slow down before the limit rather than after a 429.
 * - Each request has a timeout; answers are read up to 4 MiB.
 *
 * Shapes follow Hetzner's API reference (https://docs.hetzner.cloud/, "Servers", "Actions",
 * "Pagination", "Rate Limiting", "Errors", "Labels"); see the fake's README
 * (test/fakes/hetzner/README.md) for the answers the fake and this client agree on.
 */
import { z } from 'zod';
import { ProviderError, TimeoutError, errorMessage } from '../../errors/index.js';
import { readLimited } from '../../util/read-limited.js';
import type { RateLimitState } from '../types.js';

const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Hetzner's largest page. */
export const HCLOUD_PER_PAGE = 50;


export interface HcloudClientOptions {
  /** The API base, including `/v1` (HCLOUD_ENDPOINT; default https://api.hetzner.cloud/v1). */
  endpoint: string;
  token: string;
  timeoutMs: number;
  onRateLimit?: (state: RateLimitState) => void;
}

export class HcloudError extends ProviderError {
  readonly hcloudCode: string;
  readonly status: number;
  constructor(endpoint: string, status: number, code: string, message: string) {
    super(`${endpoint}: ${code} (HTTP ${status}): ${message}`, { retryable: status >= 500 || status === 429 || code === 'locked' || code === 'conflict' });
    this.hcloudCode = code;
    this.status = status;
  }
}

const actionSchema = z.object({
  id: z.number().int(),
  command: z.string(),
  status: z.enum(['running', 'success', 'error']),
  progress: z.number().optional(),
  error: z.object({ code: z.string(), message: z.string() }).nullable().optional(),
});
export type HcloudAction = z.output<typeof actionSchema>;

const serverSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  status: z.string(),
  labels: z.record(z.string(), z.string()).default(() => ({})),
  server_type: z.object({ name: z.string() }).optional(),
  datacenter: z.object({ location: z.object({ name: z.string() }) }).nullable().optional(),
});
export type HcloudServer = z.output<typeof serverSchema>;

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const paginationSchema = z.object({ meta: z.object({ pagination: z.object({ next_page: z.number().int().nullable() }) }).optional() });

export interface CreateServerRequest {
  name: string;
  server_type: string;
  image: string;
  location?: string;
  ssh_keys?: string[];
  networks?: number[];
  firewalls?: Array<{ firewall: number }>;
  labels: Record<string, string>;
  user_data?: string;
  start_after_create: true;
}

export class HcloudClient {
  private readonly base: string;
  private rateLimitListener: ((state: RateLimitState) => void) | undefined;

  constructor(private readonly options: HcloudClientOptions) {
    this.base = options.endpoint.replace(/\/+$/, '');
    this.rateLimitListener = options.onRateLimit;
  }

  /** Who hears each answer's rate-limit figures (the call gate, through the provider). */
  setRateLimitListener(listener: (state: RateLimitState) => void): void {
    this.rateLimitListener = listener;
  }

  async createServer(req: CreateServerRequest): Promise<{ server: HcloudServer; action: HcloudAction }> {
    return this.request('POST /servers', 'POST', '/servers', req, z.object({ server: serverSchema, action: actionSchema }));
  }

  /** The server, or null when Hetzner has none with this id. */
  async getServer(id: number): Promise<HcloudServer | null> {
    try {
      return (await this.request('GET /servers/{id}', 'GET', `/servers/${id}`, undefined, z.object({ server: serverSchema }))).server;
    } catch (err) {
      if (err instanceof HcloudError && err.hcloudCode === 'not_found') return null;
      throw err;
    }
  }

  /** Every server matching the selector (and name), all pages. */
  async listServers(query: { labelSelector?: string; name?: string }): Promise<HcloudServer[]> {
    const out: HcloudServer[] = [];
    const schema = z.object({ servers: z.array(serverSchema) }).and(paginationSchema);
    for (let page: number | null = 1; page !== null; ) {
      const params = new URLSearchParams({ page: String(page), per_page: String(HCLOUD_PER_PAGE) });
      if (query.labelSelector) params.set('label_selector', query.labelSelector);
      if (query.name) params.set('name', query.name);
      const answer: z.output<typeof schema> = await this.request('GET /servers', 'GET', `/servers?${params.toString()}`, undefined, schema);
      out.push(...answer.servers);
      const next: number | null = answer.meta?.pagination.next_page ?? null;
      page = next !== null && next > page ? next : null;
    }
    return out;
  }

  async deleteServer(id: number): Promise<HcloudAction> {
    return (await this.request('DELETE /servers/{id}', 'DELETE', `/servers/${id}`, undefined, z.object({ action: actionSchema }))).action;
  }

  /** Replaces the server's labels (Hetzner's PUT replaces the whole set). */
  async setLabels(id: number, labels: Record<string, string>): Promise<HcloudServer> {
    return (await this.request('PUT /servers/{id}', 'PUT', `/servers/${id}`, { labels }, z.object({ server: serverSchema }))).server;
  }

  /** The id of the network or firewall named `name`, or null when the project has none. */
  async idByName(kind: 'networks' | 'firewalls', name: string): Promise<number | null> {
    const schema = z.object({ [kind]: z.array(z.object({ id: z.number().int(), name: z.string() })) });
    const answer = await this.request(`GET /${kind}`, 'GET', `/${kind}?${new URLSearchParams({ name }).toString()}`, undefined, schema);
    return answer[kind]?.find((r) => r.name === name)?.id ?? null;
  }

  async getAction(id: number): Promise<HcloudAction> {
    return (await this.request('GET /actions/{id}', 'GET', `/actions/${id}`, undefined, z.object({ action: actionSchema }))).action;
  }

  private async request<T>(endpoint: string, method: string, path: string, body: unknown, schema: z.ZodType<T>): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: { Authorization: `Bearer ${this.options.token}`, Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.options.timeoutMs),
        redirect: 'error',
      });
    } catch (err) {
      if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) throw new TimeoutError(`Hetzner ${endpoint}`, this.options.timeoutMs);
      throw new ProviderError(`Hetzner ${endpoint}: ${errorMessage(err)}`, { retryable: true, cause: err });
    }
    this.reportRateLimit(res.headers);
    const text = await readAnswer(res, endpoint);
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : {};
    } catch {
      throw new ProviderError(`Hetzner ${endpoint}: HTTP ${res.status} with a body that is not JSON`, { retryable: true });
    }
    if (!res.ok) {
      const parsed = errorSchema.safeParse(json);
      throw new HcloudError(`Hetzner ${endpoint}`, res.status, parsed.success ? parsed.data.error.code : 'unknown', parsed.success ? parsed.data.error.message : `HTTP ${res.status}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new ProviderError(`Hetzner ${endpoint}: unexpected answer: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { retryable: true });
    return parsed.data;
  }

  private reportRateLimit(headers: Headers): void {
    if (!this.rateLimitListener) return;
    const limit = Number(headers.get('ratelimit-limit'));
    const remaining = Number(headers.get('ratelimit-remaining'));
    const reset = Number(headers.get('ratelimit-reset'));
    if (!headers.has('ratelimit-limit') || !Number.isFinite(limit) || !Number.isFinite(remaining) || !Number.isFinite(reset)) return;
    this.rateLimitListener({ limit, remaining, resetAtMs: reset * 1000 });
  }
}

function readAnswer(res: Response, endpoint: string): Promise<string> {
  return readLimited(res, MAX_BODY_BYTES, () => new ProviderError(`Hetzner ${endpoint}: answer larger than ${MAX_BODY_BYTES} bytes`, { retryable: true }));
}
