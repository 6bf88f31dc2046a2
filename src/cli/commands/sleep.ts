/**
 * Tenant sleep from the command line: `drover sleep <tenant> [--until TIME]` puts a tenant's
 * groups to size 0 (through the budgets, their sizes kept), `drover wake <tenant>` restores them,
 * `drover tenants` lists tenants and whether they sleep.
 */
import { parseDuration } from '../../config/duration.js';
import type { TenantView } from '../../server/views.js';
import { ApiClient, CliError, EXIT } from '../client.js';
import { json, parseOutput, table } from '../format.js';
import type { GlobalOptions } from './admin.js';

type Print = (text: string) => void;

const TENANT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function checkTenant(tenant: string): string {
  if (!TENANT.test(tenant)) throw new CliError(`expected a tenant name, got "${tenant}"`, EXIT.usage);
  return tenant;
}

/**
 * `--until`: an ISO-8601 time (with its offset, or Z), or a duration such as "8h" meaning that
 * long from `now`. Returns the ISO time to send (the server checks it is ahead and within a year).
 */
export function untilTime(text: string, now: number): string {
  const ms = parseDuration(text);
  if (ms !== null && ms > 0) return new Date(now + ms).toISOString();
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(text) && Number.isFinite(Date.parse(text))) return new Date(Date.parse(text)).toISOString();
  throw new CliError(`--until: expected an ISO-8601 time such as 2026-11-29T18:00:00Z or a duration such as 8h, got "${text}"`, EXIT.usage);
}

function describe(v: TenantView): string {
  if (!v.sleep) return `${v.tenant} is awake (${v.groups.length} group${v.groups.length === 1 ? '' : 's'}: ${v.groups.join(', ')})`;
  const until = v.sleep.until ? `until ${v.sleep.until}` : 'until woken';
  return `${v.tenant} is asleep ${until} (since ${v.sleep.since}, by ${v.sleep.by}): ${v.groups.join(', ')} drain to 0 through their budgets; their sizes are kept`;
}

export async function sleep(tenant: string, opts: GlobalOptions & { until?: string }, print: Print): Promise<void> {
  checkTenant(tenant);
  const body = opts.until === undefined ? {} : { until: untilTime(opts.until, Date.now()) };
  const result = await new ApiClient(opts).request<TenantView>('POST', `/v1/tenants/${tenant}/sleep`, body);
  print(parseOutput(opts.output) === 'json' ? json(result) : describe(result));
}

export async function wake(tenant: string, opts: GlobalOptions, print: Print): Promise<void> {
  checkTenant(tenant);
  const result = await new ApiClient(opts).request<TenantView & { woken: boolean }>('POST', `/v1/tenants/${tenant}/wake`);
  if (parseOutput(opts.output) === 'json') return print(json(result));
  print(result.woken ? `${tenant} woken: ${result.groups.join(', ')} go back to their sizes` : `${tenant} was not asleep: nothing to do`);
}

export async function tenants(opts: GlobalOptions, print: Print): Promise<void> {
  const list = await new ApiClient(opts).request<TenantView[]>('GET', '/v1/tenants');
  if (parseOutput(opts.output) === 'json') return print(json(list));
  print(
    table(
      ['tenant', 'groups', 'state', 'until', 'by'],
      list.map((v) => [v.tenant, v.groups.join(','), v.asleep ? 'asleep' : 'awake', v.sleep ? (v.sleep.until ?? 'woken') : '-', v.sleep?.by ?? '-']),
    ),
  );
}
