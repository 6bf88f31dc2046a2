/**
 * Commands that talk to a running server: status, instances, scale, drain ack, plan, events,
 * audit.
 */
import type { AuditView, GroupView, InstanceView, PlanView } from '../../server/views.js';
import { ApiClient, CliError, EXIT, type ClientOptions } from '../client.js';
import { age, json, parseOutput, table, until } from '../format.js';

export interface GlobalOptions extends ClientOptions {
  output?: string;
}

type Print = (text: string) => void;

export function splitGroup(text: string): { tenant: string; group: string } {
  const match = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})\/([A-Za-z0-9][A-Za-z0-9_.-]{0,62})$/.exec(text);
  if (!match) throw new CliError(`expected <tenant>/<group>, got "${text}"`, EXIT.usage);
  return { tenant: match[1] ?? '', group: match[2] ?? '' };
}

function blockedText(g: GroupView): string {
  const codes = [...new Set(g.blocked.map((b) => b.code))];
  return codes.length ? codes.join(',') : '-';
}

export function renderGroups(groups: GroupView[], format: string | undefined): string {
  const out = parseOutput(format);
  if (out === 'json') return json(groups);
  const headers = ['group', 'size', 'set-by', 'in-service', 'pending', 'draining', 'unhealthy', 'blocked'];
  if (out === 'wide') headers.push('live', 'max', 'template');
  const rows = table(
    headers,
    groups.map((g) => {
      const row: Array<string | number> = [`${g.tenant}/${g.group}${g.configured ? '' : ' (removed)'}`, g.size, setBy(g), g.inService, g.pending, g.draining, g.unhealthy, blockedText(g)];
      if (out === 'wide') row.push(g.live, g.maxLive, g.template ?? '-');
      return row;
    }),
  );
  // Why each size is what it is: one sentence each, under the table (too long for a column).
  const why = groups.filter((g) => g.sizing).map((g) => `  ${g.tenant}/${g.group}: ${g.sizing?.reason ?? ''}`);
  return why.length ? `${rows}\n\nsize set by:\n${why.join('\n')}` : rows;
}

/** What sets a group's size, in a word: its source, or "asleep". */
export function setBy(g: GroupView): string {
  if (!g.sizing) return '-';
  return g.sizing.sleeping ? 'asleep' : g.sizing.source;
}

export async function status(opts: GlobalOptions & { watch?: boolean; interval?: string }, print: Print): Promise<void> {
  const client = new ApiClient(opts);
  const once = async (): Promise<void> => {
    // The server pages groups (1,000 a page): every page, so a big fleet's status is whole.
    const groups = await client.requestAllPages<GroupView>('/v1/groups');
    print(renderGroups(groups, opts.output));
  };
  await once();
  if (!opts.watch) return;
  // Follow: re-render whenever something happens (the event stream), at most twice a second.
  let pending = false;
  await client.stream('/v1/events', (type) => {
    if (type === 'hello' || pending) return;
    pending = true;
    setTimeout(() => {
      pending = false;
      void once().then(() => print(''));
    }, 500);
  });
}

export async function instances(opts: GlobalOptions & { group?: string; tenant?: string; all?: boolean }, print: Print): Promise<void> {
  const client = new ApiClient(opts);
  const params = new URLSearchParams();
  if (opts.group) {
    if (opts.group.includes('/')) {
      const { tenant, group } = splitGroup(opts.group);
      params.set('tenant', tenant);
      params.set('group', group);
    } else params.set('group', opts.group);
  }
  if (opts.tenant) params.set('tenant', opts.tenant);
  if (opts.all) params.set('includeDeleted', 'true');
  const list = await client.requestAllPages<InstanceView>(`/v1/instances${params.size ? `?${params.toString()}` : ''}`);
  const out = parseOutput(opts.output);
  if (out === 'json') return print(json(list));
  const now = Date.now();
  const headers = ['id', 'group', 'status', 'age', 'health', 'agent', 'drain'];
  if (out === 'wide') headers.push('provider-id', 'created-for', 'template');
  print(
    table(
      headers,
      list.map((i) => {
        const row: Array<string | number> = [
          i.id,
          `${i.tenant}/${i.group}`,
          // A launch hook holds a new instance out of service until it is completed.
          i.launchHook === 'pending' || (i.launchHook === 'abandoned' && i.status === 'running') ? `${i.status} (launch hook ${i.launchHook})` : i.status,
          age(i.createdAt, now),
          i.healthAt ? `${age(i.healthAt, now)} ago` : 'never',
          i.connected ? 'connected' : '-',
          i.drainReason ? `${i.drainReason}, deadline ${until(i.drainDeadline, now)}` : '-',
        ];
        if (out === 'wide') row.push(i.providerId ?? '-', i.replaces ? `${i.createReason} of ${i.replaces}` : i.createReason, i.templateHash);
        return row;
      }),
    ),
  );
}

export async function scale(
  target: string,
  sizeText: string,
  opts: GlobalOptions & { wait?: boolean; timeout?: string },
  print: Print,
  progress: (line: string, done: boolean) => void,
): Promise<void> {
  const { tenant, group } = splitGroup(target);
  const size = Number(sizeText);
  if (!Number.isInteger(size) || size < 0) throw new CliError(`size must be a whole number >= 0, got "${sizeText}"`, EXIT.usage);
  const client = new ApiClient(opts);
  const result = await client.request<{ size: number; previousSize: number; standsUntil?: string | null }>('PUT', `/v1/groups/${tenant}/${group}/size`, { size });
  const stands = result.standsUntil ? `; it stands until the next schedule fires at ${result.standsUntil}` : '';
  if (!opts.wait) {
    print(parseOutput(opts.output) === 'json' ? json(result) : `${tenant}/${group} scaled from ${result.previousSize} to ${result.size}${stands}`);
    return;
  }
  const timeoutMs = parseTimeout(opts.timeout ?? '10m');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const g = await client.request<GroupView>('GET', `/v1/groups/${tenant}/${group}`);
    const done = g.inService === g.size && g.pending === 0 && g.live - g.draining === g.size;
    const blocked = g.blocked.length ? `; waiting: ${[...new Set(g.blocked.map((b) => b.code))].join(', ')}` : '';
    progress(`${tenant}/${group}: ${g.inService}/${g.size} in service, ${g.pending} pending, ${g.draining} draining, ${g.unhealthy} unhealthy${done ? '' : blocked}`, done);
    if (done) return;
    if (Date.now() > deadline) throw new CliError(`${tenant}/${group} did not reach ${size} in service within ${opts.timeout ?? '10m'}`, EXIT.timeout);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function parseTimeout(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) throw new CliError(`--timeout: not a duration: ${text}`, EXIT.usage);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(match[1]) * unit;
}

export async function drainAck(id: string, opts: GlobalOptions, print: Print): Promise<void> {
  const client = new ApiClient(opts);
  const result = await client.request<unknown>('POST', `/v1/instances/${encodeURIComponent(id)}/drain-ack`);
  print(parseOutput(opts.output) === 'json' ? json(result) : `drain of ${id} acknowledged; it will be deleted`);
}

export async function plan(target: string, opts: GlobalOptions, print: Print): Promise<void> {
  const { tenant, group } = splitGroup(target);
  const client = new ApiClient(opts);
  const p = await client.request<PlanView>('GET', `/v1/groups/${tenant}/${group}/plan`);
  if (parseOutput(opts.output) === 'json') return print(json(p));
  const s = p.summary;
  const lines = [`${tenant}/${group}: size ${s.size}, ${s.inService} in service, ${s.pending} pending, ${s.draining} draining, ${s.unhealthy} unhealthy, ${s.live} live (cap ${s.maxLive})`];
  if (p.actions.length === 0) lines.push('nothing to do now');
  for (const a of p.actions) {
    const id = 'instanceId' in a ? ` ${a.instanceId}` : '';
    const reason = 'reason' in a ? ` (${a.reason})` : '';
    lines.push(`  ${a.kind}${id}${reason}: ${a.message}`);
  }
  for (const b of p.blocked) lines.push(`  blocked ${b.code}${b.instanceId ? ` ${b.instanceId}` : ''}: ${b.message}`);
  if (p.wakeAt) lines.push(`next look: ${p.wakeAt}`);
  print(lines.join('\n'));
}

export async function events(opts: GlobalOptions & { type?: string[] }, print: Print, signal?: AbortSignal): Promise<void> {
  const client = new ApiClient(opts);
  const wanted = opts.type && opts.type.length ? new Set(opts.type) : null;
  const out = parseOutput(opts.output);
  await client.stream(
    '/v1/events',
    (type, data) => {
      if (type === 'hello' || (wanted && !wanted.has(type))) return;
      if (out === 'json') return print(JSON.stringify({ type, data }));
      print(describeEvent(type, data));
    },
    signal,
  );
}

function describeEvent(type: string, data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  const s = (v: unknown): string => (typeof v === 'string' ? v : v === null || v === undefined ? '' : JSON.stringify(v));
  switch (type) {
    case 'audit':
      return `${s(d.at)}  ${s(d.tenant)}/${s(d.group)}  ${s(d.action)} ${s(d.instanceId)} (${s(d.reason)})${d.detail ? `: ${s(d.detail)}` : ''}`;
    case 'drain':
      return `drain  ${s(d.group)}  ${s(d.instanceId)} (${s(d.reason)}) delete by ${s(d.deleteAt)}`;
    case 'error':
      return `error  ${s(d.group)}  ${s(d.instanceId)}: ${s(d.message)}`;
    default:
      return `${type}  ${JSON.stringify(data)}`;
  }
}

export async function audit(opts: GlobalOptions & { instance?: string; group?: string; limit?: string }, print: Print): Promise<void> {
  const client = new ApiClient(opts);
  const params = new URLSearchParams();
  if (opts.instance) params.set('instance', opts.instance);
  if (opts.group) params.set('group', opts.group);
  if (opts.limit) params.set('limit', opts.limit);
  const entries = await client.request<AuditView[]>('GET', `/v1/audit${params.size ? `?${params.toString()}` : ''}`);
  if (parseOutput(opts.output) === 'json') return print(json(entries));
  print(
    table(
      ['time', 'group', 'instance', 'action', 'reason', 'event', 'by', 'detail'],
      entries.map((e) => [e.at, `${e.tenant}/${e.group}`, e.instanceId ?? '-', e.action, e.reason, e.event ?? '-', e.actor, e.detail ?? '']),
    ),
  );
}
