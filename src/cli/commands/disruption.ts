/**
 * Disruption controls from the command line: drain start|extend|cancel|force, protect,
 * unprotect, hook launch (complete a launch hook), and explain (what sets the size, the dry-run plan with every block and the
 * instance it concerns).
 */
import type { GroupView, PlanView } from '../../server/views.js';
import { ApiClient, CliError, EXIT } from '../client.js';
import { json, parseOutput, table } from '../format.js';
import { setBy, splitGroup, type GlobalOptions } from './admin.js';

type Print = (text: string) => void;

async function post(opts: GlobalOptions, method: string, path: string, body: unknown, print: Print, human: (r: Record<string, unknown>) => string): Promise<void> {
  const result = await new ApiClient(opts).request<Record<string, unknown>>(method, path, body);
  print(parseOutput(opts.output) === 'json' ? json(result) : human(result));
}

const inst = (id: string): string => `/v1/instances/${encodeURIComponent(id)}`;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');

export const drainStart = (id: string, opts: GlobalOptions & { force?: boolean }, print: Print): Promise<void> =>
  post(opts, 'POST', `${inst(id)}/drain`, { force: opts.force === true }, print, () => `drain of ${id} requested${opts.force ? ' (forced past the budget)' : ''}: its replacement is created first`);

export const drainExtend = (id: string, by: string, opts: GlobalOptions, print: Print): Promise<void> =>
  post(opts, 'POST', `${inst(id)}/drain-extend`, { by }, print, (r) => `drain of ${id} now ends ${str(r.drainDeadline)}${r.capped ? ' (capped)' : ''}`);

export const drainCancel = (id: string, opts: GlobalOptions, print: Print): Promise<void> =>
  post(opts, 'POST', `${inst(id)}/drain-cancel`, undefined, print, (r) => `drain of ${id} cancelled: back in service, left alone until ${str(r.heldUntil)}`);

export const drainForce = (id: string, opts: GlobalOptions, print: Print): Promise<void> =>
  post(opts, 'POST', `${inst(id)}/drain-force`, undefined, print, () => `drain of ${id} ended: deleting now`);

export const protect = (id: string, opts: GlobalOptions & { for?: string; until?: string }, print: Print): Promise<void> =>
  post(opts, 'PUT', `${inst(id)}/protection`, opts.until ? { until: opts.until } : { for: opts.for ?? '1h' }, print, (r) => `${id} protected until ${str(r.protectedUntil)}`);

export const unprotect = (id: string, opts: GlobalOptions, print: Print): Promise<void> =>
  post(opts, 'DELETE', `${inst(id)}/protection`, undefined, print, () => `${id} no longer protected`);

/** Completes an instance's pending launch hook: `continue` lets it serve, `abandon` has it replaced. */
export function hookLaunch(id: string, opts: GlobalOptions & { result?: string }, print: Print): Promise<void> {
  const result = opts.result ?? 'continue';
  if (result !== 'continue' && result !== 'abandon') throw new CliError(`--result must be continue or abandon (got ${JSON.stringify(result)})`, EXIT.usage);
  return post(opts, 'POST', `${inst(id)}/hooks/launch`, { result }, print, () =>
    result === 'continue' ? `launch hook of ${id} completed: in service once healthy` : `launch hook of ${id} abandoned: the instance is replaced`,
  );
}

/** The dry-run plan with every block, what each concerns, and the budgets in force. */
export async function explain(target: string, opts: GlobalOptions, print: Print): Promise<void> {
  const { tenant, group } = splitGroup(target);
  const client = new ApiClient(opts);
  const plan = await client.request<PlanView>('GET', `/v1/groups/${tenant}/${group}/plan`);
  const view = await client.request<GroupView>('GET', `/v1/groups/${tenant}/${group}`);
  if (parseOutput(opts.output) === 'json') return print(json({ group: view, plan }));
  const s = plan.summary;
  const lines: string[] = [
    `${tenant}/${group}: size ${s.size}, ${s.inService} in service, ${s.pending} pending${s.launchHookPending ? ` (${s.launchHookPending} waiting for their launch hook)` : ''}, ${s.draining} draining, ${s.unhealthy} unhealthy; ${s.live} live of at most ${s.maxLive}`,
  ];
  if (view.sizing) lines.push(`size ${view.sizing.size} set by ${setBy(view)}: ${view.sizing.reason}`);
  const autoscale = view.sizing?.autoscale;
  if (autoscale) {
    lines.push(
      autoscale.lastAt
        ? `autoscale, last evaluated ${autoscale.lastAt}${autoscale.lastValue === null ? '' : ` (value ${autoscale.lastValue})`}: ${autoscale.lastDecision ?? '-'}`
        : 'autoscale: not evaluated yet',
    );
    if (autoscale.blocked) lines.push(`autoscale blocked since ${autoscale.blocked.since}: ${autoscale.blocked.message}`);
  }
  lines.push(s.disruption.shortCircuited ? `health brake ON: more than ${s.disruption.maxUnhealthy ?? '?'} unhealthy, automatic replacement paused` : `health brake off${s.disruption.maxUnhealthy !== null ? ` (maxUnhealthy ${s.disruption.maxUnhealthy})` : ''}`);
  lines.push('', 'budgets:');
  lines.push(
    table(
      ['reason', 'allowed now', 'disrupted', 'set by', 'until'],
      Object.entries(s.disruption.budgets).map(([reason, b]) => [reason, b.allowed === null ? 'no limit' : b.allowed, b.used, b.limitedBy ?? '-', b.until ?? '-']),
    ),
  );
  lines.push('', plan.actions.length ? 'would do now:' : 'would do now: nothing');
  for (const a of plan.actions) {
    const id = 'instanceId' in a ? ` ${a.instanceId}` : '';
    const why = 'reason' in a ? ` (${a.reason})` : '';
    lines.push(`  ${a.kind}${id}${why}: ${a.message}`);
  }
  lines.push('', plan.blocked.length ? 'blocked:' : 'blocked: nothing');
  if (plan.blocked.length) {
    lines.push(table(['code', 'instance', 'since', 'until', 'why'], plan.blocked.map((b) => [b.code, b.instanceId ?? '-', b.since ?? '-', b.until ?? '-', b.message])));
  }
  if (plan.wakeAt) lines.push('', `next look: ${plan.wakeAt}`);
  print(lines.join('\n'));
}
