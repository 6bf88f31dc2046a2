/**
 * B3's fleet view: the real Drover server (`startDroverServer`: fastify, auth, the routes, SQLite)
 * on the populated fleet, once its start-up pass is done; timed, over real HTTP on 127.0.0.1,
 * the requests the dashboard's fleet page makes when it loads (all at once, as the browser does),
 * and the CLI's `GET /v1/groups` (a full page of 1,000 groups).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { startDroverServer } from '../src/app/drover-server.js';
import { SystemClock } from '../src/index.js';
import { TableCloud } from './b3-cloud.js';
import { CLOUD_FILE, b3Config, type B3WorkerOptions } from './b3-worker.js';
import { maxRssMb, now, round } from './common.js';

/** The groups the dashboard's fleet page asks for at once (`web/src/fleet.tsx`). */
export const FLEET_PAGE = 100;
const ROUNDS = 5;
const TOKEN = 'b3-fleet-view-token-0123456789';

export interface B3FleetResult {
  /** The dashboard's first load, all requests at once → the last answered (ms): the first round, and the median of the next rounds. */
  firstLoadMs: number;
  loadMedianMs: number;
  /** Each request's time in the median round (ms), by path. */
  requests: Record<string, number>;
  /** `GET /v1/groups` with no parameters: the default (and largest) page, 1,000 groups: median (ms). */
  cliGroupsMs: number;
  /** What the answers held (checked): groups on the dashboard's page, the totals' instance count. */
  pageGroups: number;
  totalInstances: number;
  totalGroups: number;
  /** The server's start-up pass on this fleet (start → reconciler idle), before any request (ms). */
  serverPassMs: number;
  maxRssMb: number;
}

async function timed(url: string): Promise<{ ms: number; body: unknown }> {
  const started = now();
  const res = await fetch(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body: unknown = await res.json();
  const ms = now() - started;
  if (res.status !== 200) throw new Error(`B3 fleet view: ${url} answered ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
  return { ms, body };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

export async function fleetView(o: B3WorkerOptions): Promise<B3FleetResult> {
  const configPath = join(o.dir, 'drover.json');
  writeFileSync(configPath, JSON.stringify({ ...b3Config(o), server: { listen: '127.0.0.1:0', dataDir: o.dir, token: TOKEN } }));
  const clock = new SystemClock();
  const provider = new TableCloud(join(o.dir, CLOUD_FILE), { clock });
  const started = now();
  const server = await startDroverServer({ configPath, logger: pino({ level: 'warn' }, process.stderr), clock, provider });
  try {
    await server.reconciler.idle();
    const serverPassMs = now() - started;
    const paths = ['/v1/whoami', '/healthz', '/v1/fleet', `/v1/groups?limit=${FLEET_PAGE}`, '/v1/audit?limit=15'];
    const rounds: Array<{ totalMs: number; each: Record<string, number>; page: unknown; fleet: unknown }> = [];
    for (let r = 0; r <= ROUNDS; r++) {
      const t0 = now();
      const answers = await Promise.all(paths.map((p) => timed(`${server.url}${p}`)));
      rounds.push({
        totalMs: now() - t0,
        each: Object.fromEntries(paths.map((p, i) => [p, round(answers[i]!.ms, 1)])),
        page: answers[3]!.body,
        fleet: answers[2]!.body,
      });
    }
    const later = rounds.slice(1).sort((a, b) => a.totalMs - b.totalMs);
    const mid = later[Math.floor(later.length / 2)]!;
    const page = mid.page as unknown[];
    const fleet = mid.fleet as { instances: number; groups: number };
    const cli: number[] = [];
    for (let r = 0; r < 3; r++) cli.push((await timed(`${server.url}/v1/groups`)).ms);
    return {
      firstLoadMs: round(rounds[0]!.totalMs, 1),
      loadMedianMs: round(mid.totalMs, 1),
      requests: mid.each,
      cliGroupsMs: round(median(cli), 1),
      pageGroups: page.length,
      totalInstances: fleet.instances,
      totalGroups: fleet.groups,
      serverPassMs: round(serverPassMs, 0),
      maxRssMb: round(maxRssMb(), 1),
    };
  } finally {
    await server.stop();
    provider.close();
  }
}
