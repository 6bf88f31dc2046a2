/**
 * The autoscale loop on a manual clock, over a real reconciler (SQLite, SimProvider): it acts on
 * the leader only, the group's size follows the query, each change is audited once (by the
 * autoscaler, not again by the reconciler), failures block and keep the size, one query at a
 * time per group, and it follows config changes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Autoscaler, type QueryAnswer, type QuerySpec } from '../../src/autoscale/index.js';
import { UnavailableError } from '../../src/errors/index.js';
import { keys, type AutoscaleState, type SizeOverride } from '../../src/state/index.js';
import { Harness, configWith } from '../helpers/harness.js';

const AUTOSCALE = {
  prometheus: 'http://127.0.0.1:9090',
  query: 'sum(rate(http_requests_total{job="web"}[2m]))',
  targetPerInstance: 100,
  interval: '30s',
  scaleUpCooldown: '1m',
  scaleDownCooldown: '5m',
  maxStepDown: 2,
};

function config(autoscale: Record<string, unknown> | null = AUTOSCALE, web: Record<string, unknown> = {}): Record<string, unknown> {
  return configWith({ default: { web: { size: 2, min: 1, max: 20, template: 'web', drainTimeout: '0s', ...(autoscale ? { autoscale } : {}), ...web } } });
}

/** A query whose answer the test sets; `hold()` keeps the next ones pending until `release()`. */
class FakePrometheus {
  value: number | null = 0;
  calls: QuerySpec[] = [];
  inFlight = 0;
  maxInFlight = 0;
  private held: Array<() => void> | null = null;

  readonly query = async (spec: QuerySpec, signal: AbortSignal): Promise<QueryAnswer> => {
    this.calls.push(spec);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.held) {
        await new Promise<void>((resolve) => {
          this.held!.push(resolve);
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
      }
      if (signal.aborted) return { ok: false, kind: 'error', error: new UnavailableError(`querying Prometheus ${spec.prometheus}: aborted`) };
      if (this.value === null) return { ok: false, kind: 'error', error: new UnavailableError(`querying Prometheus ${spec.prometheus}: ECONNREFUSED`) };
      return { ok: true, value: this.value };
    } finally {
      this.inFlight--;
    }
  };

  hold(): void {
    this.held = [];
  }

  release(): void {
    const waiting = this.held ?? [];
    this.held = null;
    for (const r of waiting) r();
  }
}

let h: Harness | undefined;
let scaler: Autoscaler | undefined;
afterEach(async () => {
  await scaler?.stop();
  await h?.close();
  h = undefined;
  scaler = undefined;
});

async function setup(cfg = config(), maxConcurrentQueries?: number): Promise<{ h: Harness; scaler: Autoscaler; prom: FakePrometheus }> {
  h = await new Harness({ config: cfg }).start();
  const prom = new FakePrometheus();
  const harness = h;
  scaler = new Autoscaler({
    target: harness.reconciler,
    configLoader: harness.loader,
    audit: harness.db,
    clock: harness.clock,
    logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    isLeader: () => harness.leader,
    epoch: () => 7,
    query: prom.query,
    ...(maxConcurrentQueries ? { maxConcurrentQueries } : {}),
  });
  return { h, scaler, prom };
}

/** Moves the clock by `ms` and lets the evaluations and the reconciler finish. */
async function tick(ms: number): Promise<void> {
  await h!.clock.advance(ms);
  await scaler!.idle();
  await h!.settle();
}

const size = (): number => h!.reconciler.sizeDecision('default', 'web')!.size;
const scaleAudits = () => h!.db.listAudit({ tenant: 'default', group: 'web' }).filter((a) => a.action === 'scale');
const state = () => h!.reconciler.operatorState.get<AutoscaleState>(keys.autoscale('default', 'web'));

describe('Autoscaler', () => {
  it('on the leader, evaluates at once and then every interval; the size and the instances follow the query; each change is audited once, by autoscale', async () => {
    const { scaler, prom } = await setup();
    prom.value = 640; // 7 instances
    scaler.start();
    await tick(0);
    expect(prom.calls).toHaveLength(1);
    expect(prom.calls[0]).toMatchObject({ prometheus: 'http://127.0.0.1:9090', query: AUTOSCALE.query, queryTimeoutMs: 10_000, bearerTokenFile: null });
    expect(size()).toBe(7);
    expect(h!.live().filter((i) => i.status !== 'deleted')).toHaveLength(7);
    await tick(30_000);
    expect(prom.calls).toHaveLength(2);
    const audits = scaleAudits();
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ action: 'scale', reason: 'autoscale', actor: 'autoscale', epoch: 7, detail: 'size 2 -> 7: value 640 / 100 per instance: 7' });
    const plan = h!.reconciler.plan('default', 'web');
    expect(plan.sizing).toMatchObject({ size: 7, source: 'autoscale', autoscale: { blocked: null, lastValue: 640, lastDecision: 'size kept at 7: value 640 / 100 per instance: 7' } });
  });

  it('scales down in steps of maxStepDown, each after scaleDownCooldown, to the highest recommendation of the window', async () => {
    const { scaler, prom } = await setup();
    prom.value = 1_000;
    scaler.start();
    await tick(0);
    expect(size()).toBe(10);
    prom.value = 150; // 2
    const sizes: number[] = [];
    for (let i = 0; i < 24; i++) {
      await tick(30_000);
      sizes.push(size());
    }
    // 5 minutes after the scale-up (the 10th tick) the window holds only 2s: 10 -> 8, then every 5 minutes.
    expect(sizes.slice(0, 9).every((s) => s === 10)).toBe(true);
    expect(sizes[9]).toBe(8);
    expect(sizes[18]).toBe(8);
    expect(sizes[19]).toBe(6);
    expect(scaleAudits().map((a) => a.detail?.split(':')[0])).toEqual(['size 2 -> 10', 'size 10 -> 8', 'size 8 -> 6']);
  });

  it('a failing query keeps the size and blocks (audited once, shown in the plan); the next good answer resumes', async () => {
    const { scaler, prom } = await setup();
    prom.value = 500;
    scaler.start();
    await tick(0);
    expect(size()).toBe(5);
    prom.value = null;
    await tick(30_000);
    await tick(30_000);
    expect(size()).toBe(5);
    const plan = h!.reconciler.plan('default', 'web');
    expect(plan.blocked).toContainEqual(expect.objectContaining({ code: 'AutoscaleBlocked', message: 'autoscale keeps the size at 5: querying Prometheus http://127.0.0.1:9090: ECONNREFUSED' }));
    expect(state()!.blocked!.since).toBe(new Date(h!.clock.nowMs() - 30_000).toISOString());
    const actions = () => h!.db.listAudit({ tenant: 'default', group: 'web' }).map((a) => a.action).filter((a) => a.startsWith('autoscale'));
    expect(actions()).toEqual(['autoscaleBlocked']);
    prom.value = 500;
    await tick(30_000);
    expect(actions()).toEqual(['autoscaleBlocked', 'autoscaleResumed']);
    expect(h!.reconciler.plan('default', 'web').blocked.map((b) => b.code)).not.toContain('AutoscaleBlocked');
  });

  it('does nothing on a follower, starts when leadership is won and stops when it is lost', async () => {
    const { h, scaler, prom } = await setup();
    h.leader = false;
    prom.value = 900;
    scaler.start();
    await tick(120_000);
    expect(prom.calls).toHaveLength(0);
    expect(scaler.armedGroups()).toEqual([]);
    h.leader = true;
    scaler.setLeader(true);
    await tick(0);
    expect(prom.calls).toHaveLength(1);
    expect(size()).toBe(9);
    h.leader = false;
    scaler.setLeader(false);
    await tick(120_000);
    expect(prom.calls).toHaveLength(1);
  });

  it('drops a decision whose query ended after leadership was lost', async () => {
    const { h, scaler, prom } = await setup();
    prom.value = 900;
    prom.hold();
    scaler.start();
    await h.clock.advance(0);
    expect(prom.inFlight).toBe(1);
    h.leader = false;
    prom.release();
    await scaler.idle();
    expect(state()).toBeUndefined();
    expect(size()).toBe(2);
  });

  it('never has two queries of a group in flight: a tick that finds one running is skipped', async () => {
    const { h, scaler, prom } = await setup();
    prom.value = 300;
    prom.hold();
    scaler.start();
    for (let i = 0; i < 4; i++) await h.clock.advance(30_000);
    expect(prom.calls).toHaveLength(1);
    expect(prom.maxInFlight).toBe(1);
    prom.release();
    await tick(30_000);
    expect(prom.calls).toHaveLength(2);
    expect(size()).toBe(3);
  });

  it('runs at most maxConcurrentQueries queries at once over all groups; the others wait for a slot', async () => {
    const groups = Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((g) => [g, { size: 1, max: 20, template: 'web', autoscale: AUTOSCALE }]));
    const { h, scaler, prom } = await setup(configWith({ default: groups }), 2);
    prom.value = 400;
    prom.hold();
    scaler.start();
    await h.clock.advance(0);
    expect(prom.calls).toHaveLength(2);
    expect(prom.inFlight).toBe(2);
    prom.release();
    await scaler.idle();
    await h.settle();
    expect(prom.calls).toHaveLength(5);
    expect(prom.maxInFlight).toBe(2);
    for (const g of Object.keys(groups)) expect(h.reconciler.sizeDecision('default', g)!.size).toBe(4);
  });

  it("an operator's size stands for the cooldowns, then autoscale moves it", async () => {
    const { h, scaler, prom } = await setup();
    prom.value = 300;
    scaler.start();
    await tick(0);
    expect(size()).toBe(3);
    await tick(10 * 60_000);
    const override: SizeOverride = { size: 12, base: 2, at: h.clock.now().toISOString(), by: 'alice' };
    await h.reconciler.operatorState.set(keys.size('default', 'web'), override);
    await tick(30_000);
    expect(size()).toBe(12);
    expect(state()!.last!.decision).toContain('scale-down cooldown until');
    // Five minutes after alice's size: 12 -> 10 (maxStepDown 2).
    await tick(4 * 60_000 + 30_000);
    expect(size()).toBe(10);
    expect(h.reconciler.sizeDecision('default', 'web')!.source).toBe('autoscale');
  });

  it('keeps the size within the floor a schedule sets for its period', async () => {
    // Mondays 09:00-... the floor is 6 (the harness starts on Monday 2026-01-05 00:00 UTC).
    const { scaler, prom } = await setup(config({ ...AUTOSCALE, interval: '15m' }, { schedules: [{ cron: '0 9 * * *', size: 6, name: 'office' }, { cron: '0 18 * * *', size: 1, name: 'night' }] }));
    prom.value = 100;
    scaler.start();
    await tick(0);
    expect(size()).toBe(1);
    await tick(9 * 3_600_000);
    expect(size()).toBe(6);
    expect(h!.reconciler.sizeDecision('default', 'web')!.floor).toBe(6);
    // At 18:00 the floor drops: autoscale steps down from 6, it does not jump to 1.
    await tick(9 * 3_600_000);
    expect(size()).toBe(4);
  });

  it('follows the config: a group that loses autoscale loses its timer, one that gains it gets one, a new interval applies', async () => {
    const { h, scaler, prom } = await setup(config(null));
    scaler.start();
    await tick(60_000);
    expect(scaler.armedGroups()).toEqual([]);
    h.loader.update(config());
    await tick(0);
    expect(scaler.armedGroups()).toEqual(['default/web']);
    expect(prom.calls).toHaveLength(1);
    h.loader.update(config({ ...AUTOSCALE, interval: '10s' }));
    await tick(0);
    await tick(10_000);
    await tick(10_000);
    expect(prom.calls).toHaveLength(4);
    expect(state()).toBeDefined();
    h.loader.update(config(null));
    await tick(60_000);
    expect(scaler.armedGroups()).toEqual([]);
    expect(prom.calls).toHaveLength(4);
    // Its recorded decisions go: they would set the size again the day autoscale comes back.
    expect(state()).toBeUndefined();
  });

  it('stop aborts the queries in flight and drops their decisions', async () => {
    const { h, scaler, prom } = await setup();
    prom.value = 900;
    prom.hold();
    scaler.start();
    await h.clock.advance(0);
    expect(prom.inFlight).toBe(1);
    await scaler.stop();
    expect(prom.inFlight).toBe(0);
    expect(state()).toBeUndefined();
    await tick(60_000);
    expect(prom.calls).toHaveLength(1);
  });

  it('pauses while the tenant sleeps', async () => {
    const { h, scaler, prom } = await setup();
    await h.reconciler.operatorState.set(keys.sleep('default'), { until: null, at: h.clock.now().toISOString(), by: 'alice' });
    prom.value = 900;
    scaler.start();
    await tick(60_000);
    expect(prom.calls).toHaveLength(0);
    expect(state()).toBeUndefined();
  });
});
