/** The page: sign-in when the server wants a token, the connection and leadership banners, and the views. */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, getActor, getToken, onForbidden, onUnauthorized, setActor, setToken } from './api.js';
import { callerLabel, type Caller } from './caller.js';
import { Notices } from './components.js';
import { FleetView } from './fleet.js';
import { duration, when } from './format.js';
import { GroupView } from './group.js';
import { CallerContext, useLive, useNow, useResource, useRoute, webhooksHref, type Route } from './hooks.js';
import { InstanceView } from './instance.js';
import { live } from './live.js';
import { WebhooksView } from './webhooks.js';

type Auth = { state: 'checking' } | { state: 'in' } | { state: 'out'; message: string | null };

export function App(): JSX.Element {
  const [auth, setAuth] = useState<Auth>({ state: 'checking' });

  useEffect(() => {
    const hadToken = getToken() !== null;
    void live.start().then((outcome) => {
      if (outcome !== 'refused') return setAuth({ state: 'in' });
      setToken(null);
      setAuth({ state: 'out', message: hadToken ? 'The server refused the saved token (wrong token). Enter it again.' : null });
    });
    return onUnauthorized(() => {
      live.stop();
      setToken(null);
      setAuth({ state: 'out', message: 'The server refused the token (wrong token). Enter it again.' });
    });
  }, []);

  if (auth.state === 'checking') {
    return (
      <main id="main" class="center">
        <p class="muted">Connecting to the server…</p>
      </main>
    );
  }
  if (auth.state === 'out') return <Login message={auth.message} onIn={() => setAuth({ state: 'in' })} />;
  return (
    <Shell
      onSignOut={() => {
        live.stop();
        setToken(null);
        setAuth({ state: 'out', message: 'Signed out.' });
      }}
    />
  );
}

function Login({ message, onIn }: { message: string | null; onIn: () => void }): JSX.Element {
  const [token, setTokenText] = useState('');
  const [actor, setActorText] = useState(getActor() === 'dashboard' ? '' : getActor());
  const [error, setError] = useState<string | null>(message);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setToken(token.trim());
    setActor(actor.trim() || null);
    const outcome = await live.start();
    setBusy(false);
    if (outcome === 'ok') return onIn();
    if (outcome === 'refused') {
      setToken(null);
      setError('The server refused this token (wrong token).');
    } else {
      live.stop();
      setError('The server cannot be reached. Try again.');
    }
  };
  return (
    <main id="main" class="login">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="login-heading" data-testid="login">
        <h1 id="login-heading">
          <Logo /> Drover
        </h1>
        <p>This server requires its API token. It is kept in this browser tab until the tab is closed.</p>
        <p class="field">
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autoComplete="current-password" value={token} onInput={(e) => setTokenText(e.currentTarget.value)} required autoFocus aria-invalid={error ? 'true' : undefined} aria-describedby={error ? 'login-error' : undefined} />
        </p>
        <p class="field">
          <label for="actor">Your name, for the audit (optional)</label>
          <input id="actor" name="actor" autoComplete="username" value={actor} onInput={(e) => setActorText(e.currentTarget.value)} placeholder="dashboard" />
        </p>
        {error ? (
          <p class="error" role="alert" id="login-error">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Logo(): JSX.Element {
  return (
    <svg class="logo" viewBox="0 0 32 32" aria-hidden="true" width="28" height="28">
      <rect width="32" height="32" rx="6" fill="currentColor" />
      <path d="M8 22V10h6a6 6 0 0 1 0 12z" fill="none" stroke="var(--bg)" stroke-width="3" />
      <circle cx="23" cy="21" r="2.5" fill="var(--bg)" />
    </svg>
  );
}

function titleOf(route: Route): string {
  switch (route.view) {
    case 'fleet':
      return 'Fleet';
    case 'group':
      return `${route.tenant}/${route.group}`;
    case 'instance':
      return route.id;
    case 'webhooks':
      return 'Webhooks';
    case 'missing':
      return 'Not found';
  }
}

function Shell({ onSignOut }: { onSignOut: () => void }): JSX.Element {
  const route = useRoute();
  const state = useLive();
  // Read again whenever everything may have changed (a reconnect, a config reload that may have
  // changed the tokens, a reset) and after a change the server refused with 403.
  const whoami = useResource<Caller>('whoami', (signal) => get<Caller>('/v1/whoami', signal), () => false);
  const reloadWhoami = whoami.reload;
  useEffect(() => onForbidden(reloadWhoami), [reloadWhoami]);
  const first = useRef(true);
  useEffect(() => {
    document.title = `${titleOf(route)} · Drover`;
    if (first.current) {
      first.current = false;
      return;
    }
    // Move focus to the new page's heading, as a page load would.
    window.requestAnimationFrame(() => document.querySelector<HTMLElement>('main h1')?.focus());
  }, [route]);

  return (
    <CallerContext.Provider value={whoami.data}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.querySelector<HTMLElement>('main h1')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/">
          <Logo /> Drover
        </a>
        <nav aria-label="Main">
          <a href="#/" aria-current={route.view === 'fleet' ? 'page' : undefined}>
            Fleet
          </a>
          <a href={webhooksHref} aria-current={route.view === 'webhooks' ? 'page' : undefined}>
            Webhooks
          </a>
        </nav>
        <span class="spacer" />
        {whoami.data ? <CallerBadge caller={whoami.data} /> : null}
        <LiveStatus />
        {getToken() ? (
          <button type="button" class="small" onClick={onSignOut}>
            Sign out
          </button>
        ) : null}
      </header>
      <Banners />
      <main id="main" data-stream={state.stream}>
        {route.view === 'fleet' ? <FleetView /> : null}
        {route.view === 'group' ? <GroupView key={`${route.tenant}/${route.group}`} tenant={route.tenant} group={route.group} /> : null}
        {route.view === 'instance' ? <InstanceView key={route.id} id={route.id} /> : null}
        {route.view === 'webhooks' ? <WebhooksView /> : null}
        {route.view === 'missing' ? (
          <>
            <h1 tabIndex={-1}>Not found</h1>
            <p>
              Nothing lives at <code>{route.path}</code>. <a href="#/">Back to the fleet</a>.
            </p>
          </>
        ) : null}
      </main>
      <Notices />
      <footer class="foot muted">
        Drover {state.version ?? ''} · {state.leader === null ? '' : state.leader ? 'leader' : 'not the leader'}
      </footer>
    </CallerContext.Provider>
  );
}

/** "grafana · viewer" in the header: who the server takes this page for, and so what it offers. */
function CallerBadge({ caller }: { caller: Caller }): JSX.Element {
  const scope = caller.tenants ? `tenants ${caller.tenants.join(', ')} only` : 'every tenant';
  const title = !caller.authRequired
    ? 'This server requires no token: anyone who reaches it may do everything.'
    : caller.role === 'viewer'
      ? `Signed in with token "${caller.name}": viewer, so this page shows the fleet but offers no changes (${scope}).`
      : `Signed in with token "${caller.name}": ${caller.role} (${scope}).`;
  return (
    <span class="caller" data-testid="caller" title={title}>
      <span class="visually-hidden">Signed in as </span>
      {callerLabel(caller)}
    </span>
  );
}

function LiveStatus(): JSX.Element {
  const { stream } = useLive();
  const label = stream === 'live' ? 'Live' : stream === 'lost' ? 'Disconnected' : stream === 'closed' ? 'Closed' : 'Connecting…';
  return (
    <span class={`pill pill-${stream}`} data-testid="stream-status" title="Updates from the server's event stream">
      <span class="dot" aria-hidden="true" />
      {label}
    </span>
  );
}

function Banners(): JSX.Element {
  const state = useLive();
  const now = useNow();
  return (
    <div class="banners">
      {state.stream === 'lost' ? (
        <div class="banner banner-bad" role="alert" data-testid="banner-disconnected">
          <strong>Connection to the server lost</strong> ({state.streamError ?? 'unknown error'}). What you see may be out of date
          {state.lastEventAt ? ` (last update ${when(new Date(state.lastEventAt).toISOString())})` : ''}.{' '}
          {state.retryAt ? `Reconnecting in ${duration(Math.max(0, state.retryAt - (now - state.offsetMs)))}.` : 'Reconnecting…'}
        </div>
      ) : null}
      {state.leader === false ? (
        <div class="banner banner-warn" role="alert" data-testid="banner-not-leader">
          <strong>This server is not the leader.</strong> It shows the fleet but does not act on it: groups are not reconciled from here until it leads again.
        </div>
      ) : null}
      {state.configError ? (
        <div class="banner banner-warn" role="alert">
          <strong>The config file was rejected</strong>; the previous config stays in force: {state.configError}
        </div>
      ) : null}
    </div>
  );
}
