/** The fleet: every group at a glance, what needs a person, and what Drover did last. */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { enc, get } from './api.js';
import { ScaleDialog } from './actions.js';
import { mayActAnywhere, mayActOn } from './caller.js';
import { BlockList, BlockUntil, ErrorText } from './components.js';
import { ATTENTION_BLOCKS, countdown, drainUrgent, isUnhealthy, stateLabel, when } from './format.js';
import { groupHref, instanceHref, useCaller, useLive, useNow, useResource } from './hooks.js';
import { live } from './live.js';
import type { AuditEntry, Fleet, Group, Instance } from './types.js';

const keyOf = (g: { tenant: string; group: string }): string => `${g.tenant}/${g.group}`;

/**
 * Groups on one page of the table. The server pages and counts (`GET /v1/groups?limit=&after=`,
 * `GET /v1/fleet`), so the page loads as fast with a million instances as with ten.
 */
export const GROUP_PAGE = 100;

export function FleetView(): JSX.Element {
  const [filter, setFilter] = useState('');
  // The cursors of the pages before this one (the server's "tenant/group" of each page's last row).
  const [cursors, setCursors] = useState<string[]>([]);
  const after = cursors[cursors.length - 1];
  const query = `limit=${GROUP_PAGE}${after ? `&after=${enc(after)}` : ''}${filter ? `&q=${enc(filter)}` : ''}`;
  const groups = useResource<Group[]>(`groups:${query}`, (signal) => get<Group[]>(`/v1/groups?${query}`, signal), () => true);
  const fleet = useResource<Fleet>('fleet', (signal) => get<Fleet>('/v1/fleet', signal), () => true);
  const now = useNow();
  const caller = useCaller();
  // A viewer's table has no actions column at all, rather than an empty one.
  const actionsColumn = mayActAnywhere(caller);
  const columnCount = actionsColumn ? 8 : 7;
  const [scaling, setScaling] = useState<Group | null>(null);
  const list = groups.data ?? [];
  const last = list[list.length - 1];
  const hasNext = list.length === GROUP_PAGE && last !== undefined;
  const totals = fleet.data;
  const firstRow = cursors.length * GROUP_PAGE + 1;

  return (
    <>
      <h1 tabIndex={-1}>Fleet</h1>
      <p class="lede" data-testid="fleet-totals">
        {totals ? (
          <>
            {totals.groups} group{totals.groups === 1 ? '' : 's'}, {totals.instances} instance{totals.instances === 1 ? '' : 's'}: {totals.byStatus.running} running
            {totals.byStatus.creating ? `, ${totals.byStatus.creating} creating` : ''}
            {totals.byStatus.draining ? `, ${totals.byStatus.draining} draining` : ''}
            {totals.byStatus.deleting ? `, ${totals.byStatus.deleting} deleting` : ''}.
          </>
        ) : (
          'Counting…'
        )}
      </p>
      <ErrorText error={fleet.error} />
      <ErrorText error={groups.error} />
      <Attention groups={list} now={now} />
      <section aria-labelledby="groups-heading">
        <h2 id="groups-heading">Groups</h2>
        <div class="pager" data-testid="groups-pager">
          <label>
            Filter{' '}
            <input
              type="search"
              value={filter}
              placeholder="tenant/group"
              maxLength={200}
              onInput={(e) => {
                setFilter((e.target as HTMLInputElement).value);
                setCursors([]);
              }}
            />
          </label>{' '}
          <span class="muted">{list.length ? `groups ${firstRow}–${firstRow + list.length - 1}${totals && !filter ? ` of ${totals.groups}` : ''}` : ''}</span>{' '}
          <button type="button" class="small" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
            Previous
          </button>{' '}
          <button type="button" class="small" disabled={!hasNext} onClick={() => last && setCursors([...cursors, `${last.tenant}/${last.group}`])}>
            Next
          </button>
        </div>
        <div class="table-wrap">
          <table class="data groups" data-testid="groups">
            <caption class="visually-hidden">Groups, with their size, state and what blocks them</caption>
            <thead>
              <tr>
                <th scope="col">Group</th>
                <th scope="col" class="num">
                  Size
                </th>
                <th scope="col" class="num">
                  In service
                </th>
                <th scope="col" class="num">
                  Pending
                </th>
                <th scope="col" class="num">
                  Draining
                </th>
                <th scope="col" class="num">
                  Unhealthy
                </th>
                <th scope="col">Blocked by</th>
                {actionsColumn ? (
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                ) : null}
              </tr>
            </thead>
            <tbody>
              {groups.loading && !groups.data ? (
                <tr>
                  <td colSpan={columnCount} class="empty">
                    Loading…
                  </td>
                </tr>
              ) : null}
              {groups.data && list.length === 0 ? (
                <tr>
                  <td colSpan={columnCount} class="empty">
                    {filter || cursors.length ? 'No groups here.' : 'No groups are configured.'}
                  </td>
                </tr>
              ) : null}
              {list.map((g) => {
                const converged = g.inService === g.size && g.pending === 0 && g.draining === 0 && g.unhealthy === 0;
                return (
                  <tr key={keyOf(g)} data-group={keyOf(g)} class={g.unhealthy ? 'row-bad' : converged ? '' : 'row-busy'}>
                    <th scope="row">
                      <a href={groupHref(g.tenant, g.group)}>{keyOf(g)}</a>
                      {!g.configured ? <span class="chip">not configured</span> : null}
                      {g.sizing?.sleeping ? (
                        <span class="chip chip-asleep" title={g.sizing.reason}>
                          asleep
                        </span>
                      ) : null}
                    </th>
                    <td class="num" data-col="size" data-label="Size">
                      {g.size}
                      {g.sizeOverride !== null && g.configuredSize !== null ? (
                        <span class="muted" title={`set by an operator; the config says ${g.configuredSize}`}>
                          {' '}
                          (config {g.configuredSize})
                        </span>
                      ) : null}
                    </td>
                    <td class="num" data-col="inService" data-label="In service">
                      {g.inService}
                    </td>
                    <td class="num" data-col="pending" data-label="Pending">
                      {g.pending}
                    </td>
                    <td class="num" data-col="draining" data-label="Draining">
                      {g.draining}
                    </td>
                    <td class={`num${g.unhealthy ? ' bad' : ''}`} data-col="unhealthy" data-label="Unhealthy">
                      {g.unhealthy}
                    </td>
                    <td class="blocked-cell">{g.blocked.length ? <BlockList blocks={g.blocked} now={now} /> : <span class="muted">{converged ? 'at size' : 'converging'}</span>}</td>
                    {actionsColumn ? (
                      <td>
                        {g.configured && mayActOn(caller, g.tenant) ? (
                          <button type="button" class="small" onClick={() => setScaling(g)} aria-label={`Scale ${keyOf(g)}`}>
                            Scale…
                          </button>
                        ) : null}
                      </td>
                    ) : null}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </section>
      <RecentActivity />
      {scaling ? <ScaleDialog group={list.find((g) => keyOf(g) === keyOf(scaling)) ?? scaling} now={now} onClose={() => setScaling(null)} /> : null}
    </>
  );
}

/** What needs a person: failing groups, unhealthy instances, drains at their deadline, reconciler errors. */
function Attention({ groups, now }: { groups: Group[]; now: number }): JSX.Element {
  const { errors } = useLive();
  const troubled = groups.filter((g) => g.unhealthy > 0 || g.draining > 0);
  const blockedGroups = groups.filter((g) => g.blocked.some((b) => ATTENTION_BLOCKS.has(b.code)));
  return (
    <section aria-labelledby="attention-heading" class="attention">
      <h2 id="attention-heading">Needs attention</h2>
      <ul class="attention-list" data-testid="attention">
        {blockedGroups.map((g) =>
          g.blocked
            .filter((b) => ATTENTION_BLOCKS.has(b.code))
            .map((b, i) => (
              <li key={`${keyOf(g)}-${b.code}-${i}`} class="att-bad">
                <a href={groupHref(g.tenant, g.group)}>{keyOf(g)}</a> <span class={`chip chip-${b.code}`}>{b.code}</span> {b.message}
                <BlockUntil until={b.until} now={now} />
              </li>
            )),
        )}
        {troubled.map((g) => (
          <GroupTrouble key={keyOf(g)} group={g} now={now} />
        ))}
        {errors.map((e) => (
          <li key={e.key} class="att-bad">
            <span class="chip chip-error">error</span> {e.group ? <a href={groupHref(...(e.group.split('/', 2) as [string, string]))}>{e.group}</a> : null}
            {e.instanceId ? (
              <>
                {' '}
                <a href={instanceHref(e.instanceId)}>{e.instanceId}</a>
              </>
            ) : null}
            : {e.message} <span class="muted">({when(e.at)})</span>{' '}
            <button type="button" class="link" onClick={() => live.dismissError(e.key)} aria-label={`Dismiss error: ${e.message}`}>
              dismiss
            </button>
          </li>
        ))}
      </ul>
      <p class="muted all-clear">Nothing needs attention.</p>
    </section>
  );
}

/** The unhealthy instances and urgent drains of one group (its instances are read only while it has any). */
function GroupTrouble({ group, now }: { group: Group; now: number }): JSX.Element | null {
  const key = keyOf(group);
  const instances = useResource<Instance[]>(
    `trouble:${key}`,
    (signal) => get<Instance[]>(`/v1/instances?tenant=${enc(group.tenant)}&group=${enc(group.group)}`, signal),
    (c) => c.groups.has(key),
  );
  const list = instances.data ?? [];
  const unhealthy = list.filter((i) => isUnhealthy(i));
  const urgent = list.filter((i) => !isUnhealthy(i) && drainUrgent(i, now));
  const shown = [...unhealthy, ...urgent].slice(0, 20);
  const more = unhealthy.length + urgent.length - shown.length;
  return (
    <>
      {shown.map((i) => {
        const c = i.drainDeadline ? countdown(i.drainDeadline, now) : null;
        return (
          <li key={i.id} class={c?.overdue || isUnhealthy(i) ? 'att-bad' : 'att-warn'} data-instance={i.id}>
            <a href={groupHref(group.tenant, group.group)}>{key}</a> <a href={instanceHref(i.id)}>{i.id}</a> <span class="chip">{stateLabel(i)}</span>
            {i.status === 'draining' ? ` ${i.drainReason ?? 'drain'}, deadline ${c?.text ?? '—'}` : ''}
            {i.lastError ? <span class="muted"> — {i.lastError}</span> : null}
          </li>
        );
      })}
      {more > 0 ? (
        <li>
          <a href={groupHref(group.tenant, group.group)}>and {more} more in {key}</a>
        </li>
      ) : null}
    </>
  );
}

function RecentActivity(): JSX.Element {
  const audit = useResource<AuditEntry[]>('audit:recent', (signal) => get<AuditEntry[]>('/v1/audit?limit=15', signal), () => true);
  const entries = [...(audit.data ?? [])].reverse();
  return (
    <section aria-labelledby="activity-heading">
      <h2 id="activity-heading">Recent activity</h2>
      <AuditTable entries={entries} caption="The latest lifecycle changes in the fleet, newest first" showGroup testId="activity" />
      <ErrorText error={audit.error} />
    </section>
  );
}

export function AuditTable({ entries, caption, showGroup, showInstance = true, testId }: { entries: AuditEntry[]; caption: string; showGroup?: boolean; showInstance?: boolean; testId?: string }): JSX.Element {
  const columns = 5 + (showGroup ? 1 : 0) + (showInstance ? 1 : 0);
  return (
    <div class="table-wrap">
      <table class="data audit" data-testid={testId}>
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            {showGroup ? <th scope="col">Group</th> : null}
            {showInstance ? <th scope="col">Instance</th> : null}
            <th scope="col">What</th>
            <th scope="col">Why</th>
            <th scope="col">Event or person</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {entries.length === 0 ? (
            <tr>
              <td colSpan={columns} class="empty">
                Nothing recorded yet.
              </td>
            </tr>
          ) : null}
          {entries.map((e) => (
            <tr key={e.seq} data-action={e.action}>
              <td class="nowrap">{when(e.at)}</td>
              {showGroup ? (
                <td>
                  <a href={groupHref(e.tenant, e.group)}>
                    {e.tenant}/{e.group}
                  </a>
                </td>
              ) : null}
              {showInstance ? <td>{e.instanceId ? <a href={instanceHref(e.instanceId)}>{e.instanceId}</a> : <span class="muted">—</span>}</td> : null}
              <th scope="row">{e.action}</th>
              <td>{e.reason}</td>
              <td>{[e.actor, e.event].filter(Boolean).join(' · ') || '—'}</td>
              <td class="detail">{e.detail ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
