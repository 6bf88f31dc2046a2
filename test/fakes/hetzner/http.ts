/** What the fake's tests share: a plain `fetch` client as a provider would write it, and a hand-driven clock. */
import { DEFAULT_TOKEN } from './fake-hcloud.js';

export interface HcloudAnswer {
  status: number;
  headers: Headers;
  /** The parsed JSON body. */
  body: Record<string, unknown>;
}

export interface HcloudClient {
  request(method: string, path: string, body?: unknown, token?: string | null): Promise<HcloudAnswer>;
  get(path: string): Promise<HcloudAnswer>;
  post(path: string, body: unknown): Promise<HcloudAnswer>;
  put(path: string, body: unknown): Promise<HcloudAnswer>;
  delete(path: string): Promise<HcloudAnswer>;
}

/** A client for `endpoint` (the base URL including /v1) sending `Authorization: Bearer <token>`. `token: null` sends none. */
export function hcloud(endpoint: string, token: string = DEFAULT_TOKEN): HcloudClient {
  const request = async (method: string, path: string, body?: unknown, tok: string | null = token): Promise<HcloudAnswer> => {
    const headers: Record<string, string> = {};
    if (tok !== null) headers.authorization = `Bearer ${tok}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${endpoint}${path}`, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  };
  return {
    request,
    get: (path) => request('GET', path),
    post: (path, body) => request('POST', path, body),
    put: (path, body) => request('PUT', path, body),
    delete: (path) => request('DELETE', path),
  };
}

/** A clock that moves only when told. */
export class ManualClock {
  constructor(private t: number = Date.UTC(2026, 0, 5, 9, 0, 0)) {}
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}
