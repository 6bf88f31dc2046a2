/**
 * The dashboard's only way to the server: the public REST API under /v1, with the bearer token
 * kept in sessionStorage (this tab, this browser session) and sent in the Authorization header,
 * never in a URL.
 */
const TOKEN_KEY = 'drover.token';
const ACTOR_KEY = 'drover.actor';

export class ApiError extends Error {
  constructor(
    /** HTTP status; 0 when the server could not be reached. */
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function session(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  return session()?.getItem(TOKEN_KEY) ?? null;
}

export function setToken(token: string | null): void {
  if (token) session()?.setItem(TOKEN_KEY, token);
  else session()?.removeItem(TOKEN_KEY);
}

/** Who the audit names for this browser's actions (X-Drover-Actor): the name given at sign-in. */
export function getActor(): string {
  return session()?.getItem(ACTOR_KEY) ?? 'dashboard';
}

export function setActor(actor: string | null): void {
  if (actor && /^[\w.@:-]{1,64}$/.test(actor)) session()?.setItem(ACTOR_KEY, actor);
  else session()?.removeItem(ACTOR_KEY);
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called whenever the server answers 401 (no token, or a wrong one). */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function notifyUnauthorized(): void {
  for (const listener of unauthorizedListeners) listener();
}

const forbiddenListeners = new Set<Listener>();

/**
 * Called whenever the server refuses a change with 403: the token's role or tenants may have
 * changed since the page asked who it is, so the page asks again and hides what it may no
 * longer do. (Only changes: a read refused with 403 must not set off another read, and so on.)
 */
export function onForbidden(listener: Listener): () => void {
  forbiddenListeners.add(listener);
  return () => forbiddenListeners.delete(listener);
}

export function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const token = getToken();
  return { ...(token ? { Authorization: `Bearer ${token}` } : {}), 'X-Drover-Actor': getActor(), ...extra };
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
}

/** One API call. Resolves with the answer for 2xx; throws ApiError with the server's words otherwise. */
export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<ApiAnswer<T>> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: authHeaders(body === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json' }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      cache: 'no-store',
      credentials: 'omit',
      // A replica that does not lead redirects writes to the leader: another origin, where the
      // token would not follow. Say so instead of following.
      redirect: method === 'GET' ? 'follow' : 'manual',
      ...(signal ? { signal } : {}),
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, `cannot reach the server (${err instanceof Error ? err.message : String(err)})`);
  }
  if (res.type === 'opaqueredirect') {
    throw new ApiError(307, 'this server does not lead its shard and redirects changes to the leader: open the dashboard on the leader to make them');
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  if (res.status === 401) notifyUnauthorized();
  if (res.status === 403 && method !== 'GET') for (const listener of forbiddenListeners) listener();
  if (!res.ok) {
    const message = parsed && typeof parsed === 'object' && 'error' in parsed && typeof parsed.error === 'string' ? parsed.error : text || res.statusText;
    throw new ApiError(res.status, message);
  }
  return { status: res.status, body: parsed as T };
}

export const get = async <T>(path: string, signal?: AbortSignal): Promise<T> => (await api<T>('GET', path, undefined, signal)).body;

export const enc = encodeURIComponent;
