/**
 * B7 Hetzner scale-out: one group 0 → 200 through the Hetzner provider and its fetch client
 * against the fake Hetzner Cloud API on loopback, with Hetzner's rate-limit shape (a project
 * budget that refills one request a second) scaled ten times in time: a budget of 360 refilling
 * 10/s. The budget starts spent (another tool of the project used it), so every request waits
 * for the refill: the figure shows whether Drover keeps to the refill rate (paced by the
 * `RateLimit-*` headers, keeping its 2 % reserve) without a 429.
 *
 * Time runs from the config change until the 200th server exists (create_server answered 201).
 * Floor: the requests the scale-out needs (one create per server, plus what Drover sends besides:
 * counted, not assumed; refused ones not counted) at the refill rate, from a spent budget. The
 * gate's reserve (2 %, 8 requests) is part of what it costs, so it is not in the floor.
 */
import { SystemClock } from '../src/index.js';
import { HcloudClient, HetznerProvider } from '../src/providers/hetzner/index.js';
import { DEFAULT_TOKEN, FakeHcloud } from '../test/fakes/hetzner/index.js';
import { buildEnv, loopDelay, now, round, shardConfig, sleep } from './common.js';

export const B7_SIZE = 200;
export const B7_LIMIT = 360;
export const B7_REFILL_PER_SECOND = 10;
const TENANT = 'bench';
const GROUP = 'scale';
const TEMPLATES = { web: { image: 'ubuntu-24.04', serverTypes: ['cx22', 'cpx21'], locations: ['fsn1', 'nbg1', 'hel1'] } };

export interface B7Result {
  seconds: number;
  floorSeconds: number;
  ratio: number;
  servers: number;
  duplicates: number;
  requests: number;
  creates: number;
  rateLimited: number;
  /** Servers per location at the end (the spread). */
  perLocation: Record<string, number>;
  loopDelayP99Ms: number;
  errors: number;
}

function config(size: number): Record<string, unknown> {
  return {
    shard: shardConfig(),
    templates: TEMPLATES,
    groups: { [TENANT]: { [GROUP]: { size, template: 'web' } } },
    provider: { kind: 'hetzner', maxCallsPerSecond: 0 },
  };
}

export async function runB7(): Promise<B7Result> {
  const fake = new FakeHcloud({ actionMs: 2_000 });
  const endpoint = await fake.start();
  fake.setRateLimit({ limit: B7_LIMIT, refillPerSecond: B7_REFILL_PER_SECOND });
  // Another tool of the project spent the budget.
  for (let i = 0; i < B7_LIMIT; i++) await (await fetch(`${endpoint}/servers?per_page=1`, { headers: { Authorization: `Bearer ${DEFAULT_TOKEN}` } })).arrayBuffer();
  const provider = new HetznerProvider({ client: new HcloudClient({ endpoint, token: DEFAULT_TOKEN, timeoutMs: 30_000 }), clock: new SystemClock(), renderUserData: () => '#!/bin/sh\n' });
  const env = buildEnv<HetznerProvider>({ config: config(0), provider });
  try {
    await env.reconciler.start();
    await env.reconciler.idle();
    // Spend the budget again right before the clock starts (it refilled while Drover started):
    // the floor is then the scale-out's own requests at the refill rate.
    for (let i = 0; i < B7_LIMIT; i++) {
      const res = await fetch(`${endpoint}/servers?per_page=1`, { headers: { Authorization: `Bearer ${DEFAULT_TOKEN}` } });
      await res.arrayBuffer();
      if (res.status === 429) break;
    }
    const callsBefore = fake.calls.length;
    const delay = loopDelay();
    const startedAt = now();
    env.loader.update(config(B7_SIZE));
    const deadline = startedAt + 120_000;
    while (fake.count('create_server', { status: 201 }) < B7_SIZE && now() < deadline) await sleep(20);
    const seconds = (now() - startedAt) / 1000;
    const lag = delay.stop();
    const created = fake.count('create_server', { status: 201 });
    if (created < B7_SIZE) throw new Error(`B7: only ${created} of ${B7_SIZE} servers within 120 s`);
    const calls = fake.calls.slice(callsBefore);
    const needed = calls.filter((c) => c.status !== 429).length;
    const floorSeconds = needed / B7_REFILL_PER_SECOND;
    const perLocation: Record<string, number> = {};
    for (const s of fake.servers()) perLocation[s.location] = (perLocation[s.location] ?? 0) + 1;
    const names = fake.servers().map((s) => s.name);
    return {
      seconds: round(seconds, 2),
      floorSeconds: round(floorSeconds, 2),
      ratio: round(seconds / floorSeconds, 3),
      servers: fake.servers().length,
      duplicates: names.length - new Set(names).size,
      requests: calls.length,
      creates: calls.filter((c) => c.route === 'create_server').length,
      rateLimited: calls.filter((c) => c.status === 429).length,
      perLocation,
      loopDelayP99Ms: lag.p99Ms,
      errors: env.errors.length,
    };
  } finally {
    await env.close();
    await fake.close();
  }
}
