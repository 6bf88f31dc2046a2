/**
 * Webhooks: the configured endpoints (their queue, dead letters and breaker), the delivery log
 * newest first, and redelivery of dead letters, one or all of an endpoint's. None of this is on
 * the event stream, so the view polls while it is shown and the page is visible.
 */
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useState } from 'preact/hooks';
import { api, ApiError, enc, get } from './api.js';
import { mayActAnywhere, mayActServerWide, mayRedeliver } from './caller.js';
import { Count, Dialog, ErrorText, notify } from './components.js';
import { ago, countdown, duration, when } from './format.js';
import { groupHref, instanceHref, useCaller, useNow, usePoll, useResource } from './hooks.js';
import type { Delivery, WebhookEndpoint } from './types.js';

/** How often the view asks again while shown: deliveries move within seconds, retries within minutes. */
export const WEBHOOK_POLL_MS = 5_000;
/** Deliveries on one page of the log. */
export const DELIVERY_PAGE = 50;

type StateFilter = '' | Delivery['state'];
const STATE_FILTERS: Array<{ value: StateFilter; label: string }> = [
  { value: '', label: 'Every state' },
  { value: 'pending', label: 'Pending' },
  { value: 'delivered', label: 'Delivered' },
  { value: 'dead', label: 'Dead letters' },
];

/** The query of one page of the log (newest first; `before`: only ids below it). */
export function deliveriesPath(filter: { state: StateFilter; endpoint: string }, before: number | undefined): string {
  const q = [`limit=${DELIVERY_PAGE}`];
  if (filter.state) q.push(`state=${filter.state}`);
  if (filter.endpoint) q.push(`endpoint=${enc(filter.endpoint)}`);
  if (before !== undefined) q.push(`before=${before}`);
  return `/v1/notifications/deliveries?${q.join('&')}`;
}

type Confirm = { kind: 'one'; delivery: Delivery } | { kind: 'endpoint'; endpoint: WebhookEndpoint };

export function WebhooksView(): JSX.Element {
  const caller = useCaller();
  const now = useNow();
  // A token limited to tenants is refused the endpoint list (403): it is not asked for it.
  const listsEndpoints = caller !== undefined && caller.tenants === null;
  const endpoints = useResource<WebhookEndpoint[]>(listsEndpoints ? 'webhook-endpoints' : null, (signal) => get<WebhookEndpoint[]>('/v1/notifications', signal), () => false);
  const [filter, setFilter] = useState<{ state: StateFilter; endpoint: string }>({ state: '', endpoint: '' });
  // The ids each older page starts below; empty: the newest page.
  const [cursors, setCursors] = useState<number[]>([]);
  const before = cursors[cursors.length - 1];
  const path = deliveriesPath(filter, before);
  // Read whoever asks (the server filters it to the token's tenants); the redeliver buttons wait for the caller.
  const deliveries = useResource<Delivery[]>(path, (signal) => get<Delivery[]>(path, signal), () => false);
  const [confirm, setConfirm] = useState<Confirm | null>(null);

  const reloadEndpoints = endpoints.reload;
  const reloadDeliveries = deliveries.reload;
  const reloadAll = useCallback(() => {
    reloadEndpoints();
    reloadDeliveries();
  }, [reloadEndpoints, reloadDeliveries]);
  usePoll(reloadAll, WEBHOOK_POLL_MS);

  const setFilterTo = (next: Partial<typeof filter>): void => {
    setFilter((f) => ({ ...f, ...next }));
    setCursors([]);
  };
  const list = endpoints.data ?? [];
  const rows = deliveries.data ?? [];
  const names = list.length ? list.map((e) => e.name) : [...new Set(rows.map((d) => d.endpoint))];
  if (filter.endpoint && !names.includes(filter.endpoint)) names.push(filter.endpoint);
  const deadTotal = list.reduce((n, e) => n + e.dead, 0);
  const pendingTotal = list.reduce((n, e) => n + e.pending, 0);
  const actionsColumn = mayActAnywhere(caller);

  return (
    <>
      <h1 tabIndex={-1}>Webhooks</h1>
      <p class="lede">Events sent to the endpoints of the config's notifications, signed, in order per instance, retried until their endpoint's retryFor, then kept as dead letters to redeliver.</p>

      {listsEndpoints ? (
        <section aria-labelledby="endpoints-heading">
          <h2 id="endpoints-heading">Endpoints</h2>
          <ErrorText error={endpoints.error} />
          {endpoints.data ? (
            <dl class="counts" data-testid="webhook-counts">
              <Count label="Endpoints" value={list.length} />
              <Count label="Pending" value={pendingTotal} tone={pendingTotal ? 'warn' : undefined} />
              <Count label="Dead letters" value={deadTotal} tone={deadTotal ? 'bad' : 'good'} />
              <Count label="Breakers open" value={list.filter((e) => e.breaker !== 'closed').length} tone={list.some((e) => e.breaker !== 'closed') ? 'bad' : undefined} />
            </dl>
          ) : null}
          <EndpointTable
            endpoints={endpoints.data}
            now={now}
            mayRedeliverAll={mayActServerWide(caller)}
            onRedeliverAll={(endpoint) => setConfirm({ kind: 'endpoint', endpoint })}
            onShowDead={(name) => setFilterTo({ state: 'dead', endpoint: name })}
          />
        </section>
      ) : caller ? (
        <p class="muted" data-testid="endpoints-hidden">
          The endpoints serve every tenant, so a token limited to tenants ({caller.tenants?.join(', ')}) does not see them; the log below shows the deliveries of its tenants.
        </p>
      ) : null}

      <section aria-labelledby="deliveries-heading">
        <div class="title-row">
          <h2 id="deliveries-heading">Deliveries</h2>
          <div class="filters">
            <p class="field inline">
              <label for="delivery-state">State</label>
              <select id="delivery-state" value={filter.state} onChange={(e) => setFilterTo({ state: e.currentTarget.value as StateFilter })}>
                {STATE_FILTERS.map((s) => (
                  <option key={s.value} value={s.value}>
                    {s.label}
                  </option>
                ))}
              </select>
            </p>
            <p class="field inline">
              <label for="delivery-endpoint">Endpoint</label>
              <select id="delivery-endpoint" value={filter.endpoint} onChange={(e) => setFilterTo({ endpoint: e.currentTarget.value })}>
                <option value="">Every endpoint</option>
                {names.map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
              </select>
            </p>
          </div>
        </div>
        <ErrorText error={deliveries.error} />
        <DeliveryTable deliveries={deliveries.data} now={now} actionsColumn={actionsColumn} mayRedeliver={(d) => mayRedeliver(caller, d.tenant)} onRedeliver={(delivery) => setConfirm({ kind: 'one', delivery })} filtered={!!(filter.state || filter.endpoint)} />
        <nav class="pager" aria-label="Pages of the delivery log">
          <button type="button" disabled={cursors.length === 0} onClick={() => setCursors([])}>
            Newest
          </button>
          <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
            ← Newer
          </button>
          <span class="muted" data-testid="delivery-page">
            Page {cursors.length + 1}
          </span>
          <button type="button" disabled={rows.length < DELIVERY_PAGE} onClick={() => setCursors((c) => [...c, rows[rows.length - 1]!.id])}>
            Older →
          </button>
        </nav>
      </section>

      {confirm ? <RedeliverDialog confirm={confirm} onClose={() => setConfirm(null)} onDone={reloadAll} /> : null}
    </>
  );
}

function BreakerChip({ endpoint, now }: { endpoint: WebhookEndpoint; now: number }): JSX.Element {
  if (endpoint.breaker === 'closed') return <span class="chip chip-ok">closed</span>;
  if (endpoint.breaker === 'halfOpen') return <span class="chip chip-RateLimited" title="One request is let through to see whether the receiver is back.">half-open</span>;
  return (
    <span class="chip chip-error" title="The receiver keeps failing: nothing is sent to it until the breaker lets a probe through.">
      open{endpoint.breakerOpenUntil ? `, probe ${countdown(endpoint.breakerOpenUntil, now).text}` : ''}
    </span>
  );
}

function EndpointTable(props: { endpoints: WebhookEndpoint[] | undefined; now: number; mayRedeliverAll: boolean; onRedeliverAll: (e: WebhookEndpoint) => void; onShowDead: (name: string) => void }): JSX.Element {
  const { endpoints, now } = props;
  const columns = props.mayRedeliverAll ? 8 : 7;
  return (
    <div class="table-wrap">
      <table class="data webhooks" data-testid="webhook-endpoints">
        <caption class="visually-hidden">Webhook endpoints, with their pending deliveries, dead letters and breaker</caption>
        <thead>
          <tr>
            <th scope="col">Endpoint</th>
            <th scope="col">Sends to</th>
            <th scope="col">Events</th>
            <th scope="col">Tenants</th>
            <th scope="col" class="num">
              Pending
            </th>
            <th scope="col" class="num">
              Dead letters
            </th>
            <th scope="col">Breaker</th>
            {props.mayRedeliverAll ? (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {!endpoints ? (
            <tr>
              <td colSpan={columns} class="empty">
                Loading…
              </td>
            </tr>
          ) : endpoints.length === 0 ? (
            <tr>
              <td colSpan={columns} class="empty">
                No webhook endpoints are configured (the config's <code>notifications</code>).
              </td>
            </tr>
          ) : null}
          {(endpoints ?? []).map((e) => (
            <tr key={e.name} data-endpoint={e.name} class={e.dead || e.breaker !== 'closed' ? 'row-bad' : e.pending ? 'row-busy' : ''}>
              <th scope="row">{e.name}</th>
              <td>
                <code>{e.url}</code> <span class="muted">{e.format}</span>
              </td>
              <td>{e.events ? e.events.join(', ') : <span class="muted">every event</span>}</td>
              <td>{e.tenants ? e.tenants.join(', ') : <span class="muted">every tenant</span>}</td>
              <td class="num" data-col="pending">
                {e.pending}
                {e.oldestPendingAt ? (
                  <span class="muted" title={`the oldest since ${when(e.oldestPendingAt)}`}>
                    {' '}
                    (oldest {ago(e.oldestPendingAt, now)})
                  </span>
                ) : null}
              </td>
              <td class={`num${e.dead ? ' bad' : ''}`} data-col="dead">
                {e.dead ? (
                  <button type="button" class="link" onClick={() => props.onShowDead(e.name)} aria-label={`Show the ${e.dead} dead letters of ${e.name}`}>
                    {e.dead}
                  </button>
                ) : (
                  0
                )}
              </td>
              <td data-col="breaker">
                <BreakerChip endpoint={e} now={now} />
              </td>
              {props.mayRedeliverAll ? (
                <td>
                  {e.dead ? (
                    <button type="button" class="small" onClick={() => props.onRedeliverAll(e)} aria-label={`Redeliver the dead letters of ${e.name}`}>
                      Redeliver all
                    </button>
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** What became of a delivery, in words: the outcome, or the next attempt, and the last error. */
function Outcome({ d, now }: { d: Delivery; now: number }): JSX.Element {
  // The status, unless the error already says it ("the receiver answered HTTP 500").
  const status = d.lastStatus && !(d.lastError ?? '').includes(`HTTP ${d.lastStatus}`) ? ` (HTTP ${d.lastStatus})` : '';
  if (d.state === 'delivered') {
    return (
      <span title={`delivered ${when(d.deliveredAt)}`}>
        delivered {ago(d.deliveredAt, now)}
        {d.latencyMs !== null ? `, ${duration(d.latencyMs)} after the event` : ''}
        {status}
      </span>
    );
  }
  if (d.state === 'dead') {
    return (
      <span class="bad" data-testid="last-error">
        gave up {ago(d.lastAttemptAt, now)}: {d.lastError ?? 'no error recorded'}
        {status}
      </span>
    );
  }
  return (
    <span>
      {d.nextAttemptAt ? `next attempt ${countdown(d.nextAttemptAt, now).text.replace(/^overdue .*/, 'now')}` : 'waiting'}
      {d.giveUpAt ? <span class="muted">, given up {countdown(d.giveUpAt, now).text}</span> : null}
      {d.lastError ? (
        <>
          <br />
          <span class="warn">
            last: {d.lastError}
            {status}
          </span>
        </>
      ) : null}
    </span>
  );
}

function Subject({ d }: { d: Delivery }): JSX.Element {
  const e = d.event;
  const parts: ComponentChildren[] = [];
  if (e.tenant && e.group) parts.push(<a href={groupHref(e.tenant, e.group)}>{`${e.tenant}/${e.group}`}</a>);
  if (e.instanceId) parts.push(<a href={instanceHref(e.instanceId)}>{e.instanceId}</a>);
  return (
    <>
      <strong>{d.eventType}</strong>{' '}
      {parts.length ? (
        parts.map((p, i) => (
          <span key={i}>
            {i ? ' · ' : ''}
            {p}
          </span>
        ))
      ) : (
        <span class="muted">{e.tenant ?? 'server'}</span>
      )}
      <br />
      <code class="muted">{d.eventId}</code>
    </>
  );
}

function DeliveryTable(props: { deliveries: Delivery[] | undefined; now: number; actionsColumn: boolean; mayRedeliver: (d: Delivery) => boolean; onRedeliver: (d: Delivery) => void; filtered: boolean }): JSX.Element {
  const { deliveries, now } = props;
  const columns = props.actionsColumn ? 7 : 6;
  return (
    <div class="table-wrap">
      <table class="data deliveries" data-testid="deliveries">
        <caption class="visually-hidden">Deliveries of events to webhook endpoints, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Delivery</th>
            <th scope="col">Event</th>
            <th scope="col">Endpoint</th>
            <th scope="col">State</th>
            <th scope="col" class="num">
              Attempts
            </th>
            <th scope="col">Outcome</th>
            {props.actionsColumn ? (
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>
          {!deliveries ? (
            <tr>
              <td colSpan={columns} class="empty">
                Loading…
              </td>
            </tr>
          ) : deliveries.length === 0 ? (
            <tr>
              <td colSpan={columns} class="empty">
                {props.filtered ? 'No delivery matches the filters.' : 'No event has been sent to an endpoint yet.'}
              </td>
            </tr>
          ) : null}
          {(deliveries ?? []).map((d) => (
            <tr key={d.id} data-delivery={d.id} data-state={d.state} class={d.state === 'dead' ? 'row-bad' : d.state === 'pending' && d.lastError ? 'row-warn' : ''}>
              <th scope="row" class="nowrap">
                #{d.id}
                <br />
                <span class="muted normal" title={when(d.createdAt)}>
                  {ago(d.createdAt, now)}
                </span>
              </th>
              <td>
                <Subject d={d} />
              </td>
              <td>{d.endpoint}</td>
              <td>
                <span class={`chip chip-delivery-${d.state}`}>{d.state === 'dead' ? 'dead letter' : d.state}</span>
              </td>
              <td class="num">{d.attempts}</td>
              <td class="outcome">
                <Outcome d={d} now={now} />
              </td>
              {props.actionsColumn ? (
                <td>
                  {d.state === 'dead' && props.mayRedeliver(d) ? (
                    <button type="button" class="small" onClick={() => props.onRedeliver(d)} aria-label={`Redeliver delivery ${d.id}`}>
                      Redeliver
                    </button>
                  ) : null}
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Confirms a redelivery, sends it, reports the server's answer; an error stays in the dialog. */
function RedeliverDialog({ confirm, onClose, onDone }: { confirm: Confirm; onClose: () => void; onDone: () => void }): JSX.Element {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const one = confirm.kind === 'one' ? confirm.delivery : null;
  const endpoint = confirm.kind === 'endpoint' ? confirm.endpoint : null;
  const title = one ? `Redeliver delivery ${one.id}` : `Redeliver the dead letters of ${endpoint!.name}`;
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (one) {
        const answer = await api('POST', `/v1/notifications/deliveries/${one.id}/redeliver`);
        notify(`Delivery ${one.id} (${one.eventType} to ${one.endpoint}) is pending again (HTTP ${answer.status}).`);
      } else {
        const answer = await api<{ redelivered: number }>('POST', `/v1/notifications/${enc(endpoint!.name)}/redeliver`);
        notify(`${answer.body.redelivered} dead letter${answer.body.redelivered === 1 ? '' : 's'} of ${endpoint!.name} pending again (HTTP ${answer.status}).`);
      }
      onDone();
      onClose();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, String(err)));
      setBusy(false);
    }
  };
  return (
    <Dialog title={title} onClose={onClose}>
      <form method="dialog" onSubmit={(e) => void submit(e)}>
        {one ? (
          <p>
            Sends event <code>{one.eventId}</code> ({one.eventType}) to {one.endpoint} again, retried as a new event would be. It gave up with: {one.lastError ?? 'no error recorded'}.
          </p>
        ) : (
          <p>
            Sends the {endpoint!.dead} dead letter{endpoint!.dead === 1 ? '' : 's'} of {endpoint!.name} again, oldest first, so that each instance's events keep their order.
          </p>
        )}
        <p class="muted">A receiver that got an event before may get it twice: it recognises it by its id.</p>
        <ErrorText error={error} />
        <div class="buttons">
          <button type="button" onClick={onClose}>
            Close
          </button>
          <button type="submit" class="primary" disabled={busy} autoFocus>
            {busy ? 'Sending…' : 'Redeliver'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
