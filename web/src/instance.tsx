/** One instance: its record, what can be done to it, and its history from the audit. */
import type { JSX } from 'preact';
import { useCallback, useState } from 'preact/hooks';
import { enc, get } from './api.js';
import { ActionDialog, InstanceActions, type InstanceAction } from './actions.js';
import { mayActOn } from './caller.js';
import { ErrorText } from './components.js';
import { AuditTable } from './fleet.js';
import { ago, age, countdown, isProtected, stateLabel, when } from './format.js';
import { groupHref, instanceHref, useCaller, useNow, useResource } from './hooks.js';
import type { AuditEntry, Instance } from './types.js';

export function InstanceView({ id }: { id: string }): JSX.Element {
  const affects = useCallback((c: { instances: ReadonlySet<string> }) => c.instances.has(id), [id]);
  const inst = useResource<Instance>(`instance:${id}`, (signal) => get<Instance>(`/v1/instances/${enc(id)}`, signal), affects);
  const history = useResource<AuditEntry[]>(`history:${id}`, (signal) => get<AuditEntry[]>(`/v1/audit?instance=${enc(id)}&limit=500`, signal), affects);
  const now = useNow();
  const caller = useCaller();
  const [acting, setActing] = useState<InstanceAction | null>(null);
  const i = inst.data;

  const row = (label: string, value: JSX.Element | string | null): JSX.Element => (
    <div>
      <dt>{label}</dt>
      <dd>{value ?? '—'}</dd>
    </div>
  );

  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="#/">Fleet</a> / {i ? <a href={groupHref(i.tenant, i.group)}>{`${i.tenant}/${i.group}`}</a> : '…'} / <span aria-current="page">{id}</span>
      </nav>
      <h1 tabIndex={-1}>{id}</h1>
      <ErrorText error={inst.error} />
      {i ? (
        <>
          <p class="lede">
            <span class={`state state-${stateLabel(i).replace(/\s+/g, '-')}`}>{stateLabel(i)}</span>
            {i.status === 'draining' && i.drainDeadline ? (
              <span class={countdown(i.drainDeadline, now).overdue ? 'bad' : 'warn'}>
                {' '}
                — {i.drainReason ?? 'drain'}, deadline {countdown(i.drainDeadline, now).text}
              </span>
            ) : null}
          </p>
          {mayActOn(caller, i.tenant) ? <InstanceActions instance={i} now={now} onAction={setActing} /> : null}
          <dl class="details" data-testid="instance-details">
            {row('Group', <a href={groupHref(i.tenant, i.group)}>{`${i.tenant}/${i.group}`}</a>)}
            {row('Status', i.status)}
            {row('Provider id', i.providerId ? <code>{i.providerId}</code> : null)}
            {row('Provider status', i.providerStatus)}
            {row('Created', `${when(i.createdAt)} (${age(i.createdAt, now)} ago)`)}
            {row('Why created', i.createReason)}
            {row('Replaces', i.replaces ? <a href={instanceHref(i.replaces)}>{i.replaces}</a> : null)}
            {row('Last health report', i.healthAt ? `${when(i.healthAt)} (${ago(i.healthAt, now)})` : 'never')}
            {row('Agent connected', i.connected ? 'yes' : 'no')}
            {row('Drain started', i.drainStartedAt ? when(i.drainStartedAt) : null)}
            {row('Drain deadline', i.drainDeadline ? `${when(i.drainDeadline)} (${countdown(i.drainDeadline, now).text})` : null)}
            {row('Drain reason', i.drainReason)}
            {row('Drain acknowledged', i.drainAckedAt ? when(i.drainAckedAt) : null)}
            {row('Judged unhealthy', i.unhealthyAt ? when(i.unhealthyAt) : null)}
            {row('Termination notice', i.noticeDeadline ? `${when(i.noticeDeadline)} (${countdown(i.noticeDeadline, now).text})` : null)}
            {row('Protected', isProtected(i, now) && i.protectedUntil ? `until ${when(i.protectedUntil)}` : 'no')}
            {row('Template', <code>{i.templateHash.slice(0, 10)}</code>)}
            {row('Deleted', i.deletedAt ? `${when(i.deletedAt)} (${i.deleteReason ?? ''})` : null)}
            {row('Last error', i.lastError)}
          </dl>
        </>
      ) : inst.loading ? (
        <p class="muted">Loading…</p>
      ) : null}
      <section aria-labelledby="history-heading">
        <h2 id="history-heading">History</h2>
        <p class="muted">Why it was created, drained and deleted, and by which event or person (oldest first).</p>
        <AuditTable entries={history.data ?? []} caption={`Audit history of ${id}, oldest first`} showInstance={false} testId="history" />
        <ErrorText error={history.error} />
      </section>
      {acting && i ? <ActionDialog action={acting} instance={i} onClose={() => setActing(null)} /> : null}
    </>
  );
}
