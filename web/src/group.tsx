/** One group: its numbers, what blocks it, its template and drift, the dry-run plan, and its instances. */
import type { JSX } from 'preact';
import { useCallback, useMemo, useState } from 'preact/hooks';
import { enc, get } from './api.js';
import { ActionDialog, InstanceActions, PlanView, ScaleDialog, type InstanceAction } from './actions.js';
import { mayActOn } from './caller.js';
import { BlockList, Count, ErrorText, VirtualTable, type Column, type Sort } from './components.js';
import { AuditTable } from './fleet.js';
import { ago, age, countdown, drainUrgent, drifted, isProtected, isUnhealthy, shortHash, stateLabel, when } from './format.js';
import { instanceHref, useCaller, useNow, useResource } from './hooks.js';
import type { AuditEntry, Group, Instance, Plan, Sizing } from './types.js';

/** Instances that need a person come first: unhealthy, then draining by deadline, then booting, then in service. */
function rank(i: Instance): number {
  if (isUnhealthy(i)) return 0;
  if (i.status === 'draining') return 1;
  if (i.status === 'deleting') return 2;
  if (i.status === 'creating' || !i.healthAt) return 3;
  return 4;
}

/** Sorts by precomputed keys (10,000 rows sort in a few milliseconds; no date parsing in the comparator). */
function sortInstances(list: Instance[], sort: Sort): Instance[] {
  const dir = sort.dir === 'ascending' ? 1 : -1;
  const time = (v: string | null): number => (v ? Date.parse(v) : Number.POSITIVE_INFINITY);
  const keyOf = (i: Instance): [number | string, number, number] => {
    switch (sort.key) {
      case 'id':
        return [i.id, 0, 0];
      case 'age':
        return [-Date.parse(i.createdAt), 0, 0];
      case 'health':
        return [time(i.healthAt), 0, 0];
      case 'drain':
        return [time(i.drainDeadline), 0, 0];
      default:
        return [rank(i), time(i.drainDeadline), Date.parse(i.createdAt)];
    }
  };
  const keyed = list.map((i) => ({ i, k: keyOf(i) }));
  const cmp = (a: number | string, b: number | string): number => (a < b ? -1 : a > b ? 1 : 0);
  keyed.sort((a, b) => dir * (cmp(a.k[0], b.k[0]) || cmp(a.k[1], b.k[1]) || cmp(a.k[2], b.k[2])) || cmp(a.i.id, b.i.id));
  return keyed.map((x) => x.i);
}

export function GroupView({ tenant, group }: { tenant: string; group: string }): JSX.Element {
  const key = `${tenant}/${group}`;
  const path = `/v1/groups/${enc(tenant)}/${enc(group)}`;
  const affects = useCallback((c: { groups: ReadonlySet<string> }) => c.groups.has(key), [key]);
  // The instances first: the server answers in order, and the table is what takes longest.
  const instances = useResource<Instance[]>(`instances:${key}`, (signal) => get<Instance[]>(`/v1/instances?tenant=${enc(tenant)}&group=${enc(group)}`, signal), affects);
  const info = useResource<Group>(`group:${key}`, (signal) => get<Group>(path, signal), affects);
  const plan = useResource<Plan>(`plan:${key}`, (signal) => get<Plan>(`${path}/plan`, signal), affects);
  const activity = useResource<AuditEntry[]>(`audit:${key}`, (signal) => get<AuditEntry[]>(`/v1/audit?group=${enc(key)}&limit=20`, signal), affects);
  const now = useNow();
  const mayAct = mayActOn(useCaller(), tenant);
  const [scaling, setScaling] = useState(false);
  const [acting, setActing] = useState<{ action: InstanceAction; instance: Instance } | null>(null);
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<Sort>({ key: 'state', dir: 'ascending' });

  const g = info.data;
  const all = instances.data;
  const hash = g?.templateHash ?? null;
  const driftCount = useMemo(() => (all && hash ? all.filter((i) => drifted(i, hash)).length : 0), [all, hash]);
  const rows = useMemo(() => {
    if (!all) return [];
    const f = filter.trim().toLowerCase();
    const matching = f ? all.filter((i) => i.id.toLowerCase().includes(f) || stateLabel(i).includes(f) || (i.drainReason ?? '').toLowerCase().includes(f)) : all;
    return sortInstances(matching, sort);
  }, [all, filter, sort]);

  const onSort = (k: string): void => setSort((s) => (s.key === k ? { key: k, dir: s.dir === 'ascending' ? 'descending' : 'ascending' } : { key: k, dir: 'ascending' }));
  const onFirstRowPaint = useCallback((ms: number) => {
    document.documentElement.dataset.firstRowPaint = String(Math.round(ms));
    performance.mark('drover:first-row-painted');
  }, []);

  const columns: Array<Column<Instance>> = [
    { key: 'id', label: 'Instance', width: '12.5rem', rowHeader: true, sortable: true, cell: (i) => <a href={instanceHref(i.id)}>{i.id}</a> },
    {
      key: 'state',
      label: 'State',
      width: '8rem',
      sortable: true,
      cell: (i) => <span class={`state state-${stateLabel(i).replace(/\s+/g, '-')}`}>{stateLabel(i)}</span>,
    },
    { key: 'age', label: 'Age', width: '5rem', sortable: true, cell: (i) => age(i.createdAt, now) },
    { key: 'health', label: 'Last health', width: '7rem', sortable: true, cell: (i) => <span title={when(i.healthAt)}>{ago(i.healthAt, now)}</span> },
    {
      key: 'drain',
      label: 'Drain',
      width: '14rem',
      sortable: true,
      cell: (i) => {
        if (i.status !== 'draining' || !i.drainDeadline) return <span class="muted">—</span>;
        const c = countdown(i.drainDeadline, now);
        return (
          <span class={c.overdue ? 'bad' : drainUrgent(i, now) ? 'warn' : ''} title={`deadline ${when(i.drainDeadline)}`}>
            {i.drainReason ?? 'drain'}, {c.text}
          </span>
        );
      },
    },
    {
      key: 'protection',
      label: 'Protected',
      width: '6.5rem',
      cell: (i) => (isProtected(i, now) && i.protectedUntil ? <span title={`until ${when(i.protectedUntil)}`}>{countdown(i.protectedUntil, now).text.replace(/^in /, '')} left</span> : <span class="muted">—</span>),
    },
    {
      key: 'template',
      label: 'Template',
      width: '6rem',
      cell: (i) => (drifted(i, hash) ? <span class="warn" title={`runs template ${shortHash(i.templateHash)}`}>drifted</span> : <span class="muted">current</span>),
    },
  ];
  if (mayAct) columns.push({ key: 'actions', label: 'Actions', width: '16rem', cell: (i) => <InstanceActions instance={i} now={now} compact onAction={(action) => setActing({ action, instance: i })} /> });

  if (info.error?.status === 404) {
    return (
      <>
        <h1 tabIndex={-1}>{key}</h1>
        <ErrorText error={info.error} />
        <p>
          <a href="#/">Back to the fleet</a>
        </p>
      </>
    );
  }

  return (
    <>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="#/">Fleet</a> / <span aria-current="page">{key}</span>
      </nav>
      <div class="title-row">
        <h1 tabIndex={-1}>{key}</h1>
        {g?.sizing?.sleeping ? (
          <span class="chip chip-asleep" data-testid="asleep-badge" title={`tenant ${tenant} is asleep ${g.sizing.sleeping.until ? `until ${when(g.sizing.sleeping.until)}` : 'until woken'}`}>
            asleep
          </span>
        ) : null}
        {g?.configured && mayAct ? (
          <button type="button" class="primary" onClick={() => setScaling(true)}>
            Scale…
          </button>
        ) : null}
      </div>
      <ErrorText error={info.error} />
      {g ? (
        <>
          <dl class="counts" data-testid="group-counts">
            <Count label="Size" value={g.size} />
            <Count label="In service" value={g.inService} tone={g.inService === g.size ? 'good' : undefined} />
            <Count label="Pending" value={g.pending} />
            <Count label="Draining" value={g.draining} tone={g.draining ? 'warn' : undefined} />
            <Count label="Unhealthy" value={g.unhealthy} tone={g.unhealthy ? 'bad' : undefined} />
            <Count label="Live / max" value={`${g.live} / ${g.maxLive}`} />
          </dl>
          {g.sizing ? <SizingNote sizing={g.sizing} tenant={tenant} now={now} /> : null}
          {g.sizeOverride !== null && g.configuredSize !== null ? <p class="muted">The size was set by an operator; the config file says {g.configuredSize}.</p> : null}
          {!g.configured ? <NotConfigured group={g} now={now} /> : null}
          <BlockList blocks={g.blocked} now={now} />
          <section aria-labelledby="template-heading">
            <h2 id="template-heading">Template</h2>
            <p>
              <strong>{g.template ?? '—'}</strong> <code title={g.templateHash ?? ''}>{shortHash(g.templateHash)}</code>
              {all ? (
                driftCount ? (
                  <span class="warn">
                    {' '}
                    — {driftCount} of {all.length} instances run an older template and are rotated, oldest first.
                  </span>
                ) : (
                  <span class="muted"> — every instance runs it.</span>
                )
              ) : null}
            </p>
          </section>
        </>
      ) : info.loading ? (
        <p class="muted">Loading…</p>
      ) : null}

      <section aria-labelledby="plan-heading">
        <h2 id="plan-heading">Dry-run plan</h2>
        <p class="muted">What Drover would do for this group now, and why.</p>
        {plan.data ? <PlanView plan={plan.data} now={now} label="Dry-run plan now" /> : null}
        <ErrorText error={plan.error} />
      </section>

      <section aria-labelledby="instances-heading">
        <div class="title-row">
          <h2 id="instances-heading">Instances {all ? <span class="muted">({rows.length === all.length ? all.length : `${rows.length} of ${all.length}`})</span> : null}</h2>
          <p class="field inline">
            <label for="instance-filter">Filter</label>
            <input id="instance-filter" type="search" value={filter} placeholder="id, state or drain reason" onInput={(e) => setFilter(e.currentTarget.value)} />
          </p>
        </div>
        <ErrorText error={instances.error} />
        {all ? (
          <VirtualTable
            caption={`Instances of ${key}`}
            rows={rows}
            columns={columns}
            rowKey={(i) => i.id}
            rowClass={(i) => (isUnhealthy(i) ? 'row-bad' : i.status === 'draining' ? 'row-warn' : '')}
            sort={sort}
            onSort={onSort}
            empty={filter ? 'No instance matches the filter.' : 'This group has no instances.'}
            onFirstRowPaint={onFirstRowPaint}
            testId="instances"
          />
        ) : instances.loading ? (
          <p class="muted">Loading instances…</p>
        ) : null}
      </section>

      <section aria-labelledby="group-activity-heading">
        <h2 id="group-activity-heading">Recent activity</h2>
        <AuditTable entries={[...(activity.data ?? [])].reverse()} caption={`The latest lifecycle changes of ${key}, newest first`} />
      </section>

      {scaling && g ? <ScaleDialog group={g} now={now} onClose={() => setScaling(false)} /> : null}
      {acting ? <ActionDialog action={acting.action} instance={acting.instance} onClose={() => setActing(null)} /> : null}
    </>
  );
}

const SOURCE_LABEL: Record<Sizing['source'], string> = { config: 'the config', schedule: 'a schedule', operator: 'an operator', autoscale: 'autoscale' };

/** What sets the group's size and why (the server's sentence), the next schedule, and a tenant's sleep. */
function SizingNote({ sizing, tenant, now }: { sizing: Sizing; tenant: string; now: number }): JSX.Element {
  const next = sizing.nextSchedule;
  const sleep = sizing.sleeping;
  return (
    <section aria-labelledby="sizing-heading" data-testid="group-sizing">
      <h2 id="sizing-heading">Size</h2>
      {sleep ? (
        <p class="warn">
          Tenant {tenant} is asleep{sleep.until ? ` until ${when(sleep.until)} (${countdown(sleep.until, now).text})` : ' until woken'}, since {when(sleep.since)} by {sleep.by}: the size is 0, and {sizing.awakeSize} when it wakes.
        </p>
      ) : null}
      <p>
        Set by <strong data-testid="size-source">{SOURCE_LABEL[sizing.source]}</strong>
        {sizing.min > 0 || sizing.max < 100_000 ? (
          <span class="muted">
            {' '}
            (min {sizing.min}, max {sizing.max})
          </span>
        ) : null}
        : <span data-testid="size-reason">{sizing.reason}</span>
      </p>
      {next ? (
        <p class="muted" data-testid="next-schedule">
          Next schedule: “{next.name}” sets {next.size} at {when(next.at)} ({countdown(next.at, now).text}).
        </p>
      ) : null}
    </section>
  );
}

/** A group gone from the config: its instances wait out the removal grace, then are drained to zero. */
function NotConfigured({ group, now }: { group: Group; now: number }): JSX.Element {
  const pending = group.blocked.find((b) => b.code === 'RemovalPending');
  if (pending?.until) {
    const c = countdown(pending.until, now);
    return (
      <p class="warn">
        This group is no longer in the config: its instances are removed {c.overdue ? 'now' : c.text} ({when(pending.until)}) unless the config brings it back first.
      </p>
    );
  }
  return <p class="warn">This group is no longer configured: its instances are drained to zero.</p>;
}
