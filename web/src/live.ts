/**
 * The live connection: one `/v1/events` stream read through fetch() (so the token travels in a
 * header), reconnected with backoff and resumed with Last-Event-ID. Events do not carry the
 * state the page shows; they say what changed, and the views that show it refetch (debounced,
 * one request in flight per view). There is no polling loop.
 */
import { backoffDelayMs, type BackoffPolicy } from '../../src/util/backoff.js';
import { authHeaders, get, notifyUnauthorized } from './api.js';
import { ChangeCollector, type Change } from './changes.js';
import { SseParser, type SseMessage } from './sse-parser.js';
import type { Healthz, ServerError } from './types.js';

/** Stream reconnects: 1 s doubling to 30 s, each drawn from the upper half (many tabs spread out). */
const RECONNECT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 30_000, jitter: 0.5, mode: 'below' };

export type StreamState = 'connecting' | 'live' | 'lost' | 'closed';
export type StartOutcome = 'ok' | 'refused' | 'unreachable';

export interface LiveState {
  stream: StreamState;
  /** Why the stream is down, in words. */
  streamError: string | null;
  /** When the next reconnection attempt is due (epoch ms). */
  retryAt: number | null;
  /** Whether this server is the leader (null until known). */
  leader: boolean | null;
  version: string | null;
  configError: string | null;
  /** Server clock minus browser clock, so countdowns follow the server's deadlines. */
  offsetMs: number;
  /** Errors the reconciler reported (notifyError) since this page opened, newest first. */
  errors: Array<ServerError & { key: number }>;
  /** When the last event arrived (epoch ms). */
  lastEventAt: number | null;
}

const DEBOUNCE_MS = 200;
const STALE_MS = 45_000; // the server sends a keep-alive every 15 s
const MAX_ERRORS = 50;

export class Live {
  state: LiveState = { stream: 'connecting', streamError: null, retryAt: null, leader: null, version: null, configError: null, offsetMs: 0, errors: [], lastEventAt: null };
  private readonly stateListeners = new Set<() => void>();
  private readonly changeListeners = new Set<(change: Change) => void>();
  private readonly pending = new ChangeCollector();
  private flushTimer: number | undefined;
  private controller: AbortController | null = null;
  private lastEventId: string | null = null;
  private errorKey = 0;
  /** Counts leader and config events, so a /healthz answer older than one is not applied. */
  private statePushes = 0;
  private connectedOnce = false;
  /** True until the stream has failed or said hello once: a first hello needs no refresh. */
  private fresh = true;
  private readyResolve: (outcome: StartOutcome) => void = () => undefined;
  /**
   * Settles once the stream is subscribed ('ok'), refused for the token ('refused') or failed
   * ('unreachable'): data fetched after it misses no event. The stream's first answer doubles as
   * the sign-in check, so the page needs no extra round trip before its first data.
   */
  ready: Promise<StartOutcome> = Promise.resolve('unreachable');

  subscribe(listener: () => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  onChange(listener: (change: Change) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  private set(patch: Partial<LiveState>): void {
    this.state = { ...this.state, ...patch };
    for (const listener of this.stateListeners) listener();
  }

  /** Marks data stale; views showing it refetch after a short debounce. */
  invalidate(what: { all?: boolean; group?: string | null; instance?: string | null }): void {
    this.pending.note(what, performance.now());
    if (this.flushTimer === undefined) this.flushTimer = window.setTimeout(() => this.flush(), DEBOUNCE_MS);
  }

  private flush(): void {
    this.flushTimer = undefined;
    const change = this.pending.take();
    if (!change) return;
    for (const listener of this.changeListeners) listener(change);
  }

  dismissError(key: number): void {
    this.set({ errors: this.state.errors.filter((e) => e.key !== key) });
  }

  dismissAllErrors(): void {
    this.set({ errors: [] });
  }

  /** Opens the stream (if not open); returns `ready`. */
  start(): Promise<StartOutcome> {
    if (this.controller) return this.ready;
    this.controller = new AbortController();
    this.connectedOnce = false;
    this.fresh = true;
    this.ready = new Promise((resolve) => (this.readyResolve = resolve));
    void this.run(this.controller.signal);
    return this.ready;
  }

  stop(): void {
    this.controller?.abort();
    this.controller = null;
    this.set({ stream: 'closed' });
  }

  /** Re-reads /healthz (leader, version, config error); no token needed. */
  async refreshHealth(): Promise<void> {
    // A leadership or config event that arrives while /healthz is in flight is newer than its
    // answer: the answer must not put the old leadership or config state back.
    const pushesAtAsk = this.statePushes;
    try {
      const h = await get<Healthz>('/healthz');
      const stale = this.statePushes !== pushesAtAsk;
      this.set({ version: h.version, ...(stale ? {} : { leader: h.leader, configError: h.configError }) });
    } catch {
      // the stream state tells the connection is down
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      let retryHintMs: number | null = null;
      try {
        if (this.state.stream !== 'lost') this.set({ stream: 'connecting' });
        const inner = new AbortController();
        const abortInner = (): void => inner.abort();
        signal.addEventListener('abort', abortInner, { once: true });
        let watchdog = window.setTimeout(abortInner, STALE_MS);
        try {
          const headers = authHeaders({ Accept: 'text/event-stream', ...(this.lastEventId ? { 'Last-Event-ID': this.lastEventId } : {}) });
          const res = await fetch('/v1/events', { headers, signal: inner.signal, cache: 'no-store', credentials: 'omit' });
          if (res.status === 401) {
            this.readyResolve('refused');
            this.controller = null;
            this.set({ stream: 'closed', streamError: 'the server refused the token' });
            // Refused after it had been accepted: the token changed on the server.
            if (this.connectedOnce) notifyUnauthorized();
            return;
          }
          if (!res.ok || !res.body) throw new Error(`the event stream answered HTTP ${res.status}`);
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          const parser = new SseParser();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            window.clearTimeout(watchdog);
            watchdog = window.setTimeout(abortInner, STALE_MS);
            for (const message of parser.push(value)) {
              if (message.event === 'hello') attempt = 0;
              this.handle(message);
            }
            if (parser.lastEventId) this.lastEventId = parser.lastEventId;
            retryHintMs = parser.retryMs;
          }
          throw new Error('the server closed the event stream');
        } finally {
          window.clearTimeout(watchdog);
          signal.removeEventListener('abort', abortInner);
        }
      } catch (err) {
        if (signal.aborted) return;
        this.readyResolve('unreachable');
        this.fresh = false;
        attempt++;
        const delay = Math.max(retryHintMs ?? 0, backoffDelayMs(RECONNECT_BACKOFF, attempt - 1, Math.random));
        const reason = err instanceof DOMException && err.name === 'AbortError' ? 'no data from the server for 45 s' : err instanceof Error ? err.message : String(err);
        this.set({ stream: 'lost', streamError: reason === 'Failed to fetch' || reason.includes('network') ? 'the server cannot be reached' : reason, retryAt: Date.now() + delay });
        await new Promise<void>((resolve) => {
          const timer = window.setTimeout(resolve, delay);
          signal.addEventListener('abort', () => (window.clearTimeout(timer), resolve()), { once: true });
        });
      }
    }
  }

  private handle(message: SseMessage): void {
    let data: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(message.data);
      if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    const str = (v: unknown): string | null => (typeof v === 'string' && v ? v : null);
    this.state.lastEventAt = Date.now();
    switch (message.event) {
      case 'hello': {
        const serverTime = str(data.serverTime);
        this.set({ stream: 'live', streamError: null, retryAt: null, leader: data.leader === true, offsetMs: serverTime ? Date.parse(serverTime) - Date.now() : 0 });
        void this.refreshHealth();
        // After a reconnect, anything may have changed while the stream was down.
        if (!this.fresh) this.invalidate({ all: true });
        this.fresh = false;
        this.connectedOnce = true;
        this.readyResolve('ok');
        return;
      }
      case 'audit':
      case 'health': {
        const tenant = str(data.tenant);
        const group = str(data.group);
        this.invalidate({ group: tenant && group ? `${tenant}/${group}` : null, instance: str(data.instanceId) });
        return;
      }
      case 'drain':
        this.invalidate({ group: str(data.group), instance: str(data.instanceId) });
        return;
      case 'error': {
        const error: ServerError = { group: str(data.group) ?? '', instanceId: str(data.instanceId), message: str(data.message) ?? 'error', at: str(data.at) ?? new Date().toISOString() };
        this.set({ errors: [{ ...error, key: ++this.errorKey }, ...this.state.errors].slice(0, MAX_ERRORS) });
        this.invalidate({ group: error.group || null, instance: error.instanceId });
        return;
      }
      case 'leader':
        this.statePushes++;
        this.set({ leader: data.leader === true });
        this.invalidate({ all: true });
        return;
      case 'config':
        this.statePushes++;
        this.set({ configError: data.ok === false ? (str(data.error) ?? 'the config was rejected') : null });
        this.invalidate({ all: true });
        return;
      case 'reset':
        // The server could not replay what this page missed (too much): everything shown may be
        // stale, so every view refetches. The resume position is useless now, and resuming from
        // it again would only earn another reset: the next reconnect starts afresh (its hello
        // refreshes everything anyway).
        this.lastEventId = null;
        this.invalidate({ all: true });
        return;
      default:
        this.invalidate({ all: true });
    }
  }
}

export const live = new Live();
