/** Preact hooks: the live state, data that refetches when the server says it changed, a ticking clock, the route, the caller. */
import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';
import type { Caller } from './caller.js';
import { fetchedAfter, type Change } from './changes.js';
import { live, type LiveState } from './live.js';
import { Poller } from './poll.js';

export function useLive(): LiveState {
  const [state, setState] = useState(live.state);
  useEffect(() => {
    setState(live.state);
    return live.subscribe(() => setState(live.state));
  }, []);
  return state;
}

export interface Resource<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Data from the API that refetches when a change it `affects` arrives on the event stream.
 * One request at a time: changes during a request cause exactly one more afterwards.
 */
export function useResource<T>(key: string | null, fetcher: (signal: AbortSignal) => Promise<T>, affects: (change: Change) => boolean): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const run = useRef<{ reload: () => void; lastStart: number } | null>(null);
  const fetcherRef = useRef(fetcher);
  fetcherRef.current = fetcher;
  const affectsRef = useRef(affects);
  affectsRef.current = affects;

  useEffect(() => {
    if (key === null) return;
    setData(undefined);
    setError(undefined);
    setLoading(true);
    const controller = new AbortController();
    let inFlight = false;
    let again = false;
    const state = { lastStart: 0, reload: (): void => undefined };
    const go = async (): Promise<void> => {
      if (controller.signal.aborted) return;
      if (inFlight) {
        again = true;
        return;
      }
      inFlight = true;
      state.lastStart = performance.now();
      try {
        const value = await fetcherRef.current(controller.signal);
        if (controller.signal.aborted) return;
        setData(value);
        setError(undefined);
      } catch (err) {
        if (controller.signal.aborted) return;
        setError(err instanceof ApiError ? err : new ApiError(0, err instanceof Error ? err.message : String(err)));
      } finally {
        inFlight = false;
        if (!controller.signal.aborted) setLoading(false);
      }
      if (again) {
        again = false;
        void go();
      }
    };
    state.reload = () => void go();
    run.current = state;
    void live.ready.then(() => go());
    const off = live.onChange((change) => {
      if (fetchedAfter(change, state.lastStart)) return; // already current
      if (change.all || affectsRef.current(change)) void go();
    });
    return () => {
      controller.abort();
      off();
    };
  }, [key]);

  const reload = useCallback(() => run.current?.reload(), []);
  return { data, error, loading, reload };
}

/** The current time (adjusted to the server's clock), ticking every `everyMs`. Local only: no request. */
export function useNow(everyMs = 1000): number {
  const offset = useLive().offsetMs;
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(timer);
  }, [everyMs]);
  return now + offset;
}

/**
 * Calls `run` every `everyMs` while the page is visible, and at once when it becomes visible
 * again (see Poller). For data that is not on the event stream.
 */
export function usePoll(run: () => void, everyMs: number): void {
  const runRef = useRef(run);
  runRef.current = run;
  useEffect(() => {
    const poller = new Poller(() => runRef.current(), everyMs, {
      setInterval: (fn, ms) => window.setInterval(fn, ms),
      clearInterval: (id) => window.clearInterval(id),
      visible: () => document.visibilityState === 'visible',
      onVisibilityChange: (fn) => {
        document.addEventListener('visibilitychange', fn);
        return () => document.removeEventListener('visibilitychange', fn);
      },
    });
    poller.start();
    return () => poller.stop();
  }, [everyMs]);
}

export type Route = { view: 'fleet' } | { view: 'webhooks' } | { view: 'group'; tenant: string; group: string } | { view: 'instance'; id: string } | { view: 'missing'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  const parts = path.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  if (parts.length === 0) return { view: 'fleet' };
  if (parts[0] === 'groups' && parts.length === 3) return { view: 'group', tenant: parts[1]!, group: parts[2]! };
  if (parts[0] === 'instances' && parts.length === 2) return { view: 'instance', id: parts[1]! };
  if (parts[0] === 'webhooks' && parts.length === 1) return { view: 'webhooks' };
  return { view: 'missing', path };
}

export const groupHref = (tenant: string, group: string): string => `#/groups/${encodeURIComponent(tenant)}/${encodeURIComponent(group)}`;
export const instanceHref = (id: string): string => `#/instances/${encodeURIComponent(id)}`;
export const webhooksHref = '#/webhooks';

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onHash = (): void => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  return route;
}

/** Who is signed in (GET /v1/whoami), provided by the page's shell; undefined until it answers. */
export const CallerContext = createContext<Caller | undefined>(undefined);

export function useCaller(): Caller | undefined {
  return useContext(CallerContext);
}
