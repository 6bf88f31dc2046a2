/**
 * Tenant sleep through the real reconciler on a manual clock: a sleeping tenant's groups go to 0
 * through the scale-down budget without their sizes changing, waking restores them, the sleep
 * survives a restart, and `until` wakes it by the clock. Each change is audited once per group.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../src/index.js';
import { keys, type TenantSleep } from '../../src/state/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MIN = 60_000;
const ONE_AT_A_TIME = { budgets: [{ max: 1, reasons: ['scaleDown'] }] };
const twoTenants = (fields: Record<string, unknown> = {}): Record<string, unknown> =>
  configWith({
    acme: {
      web: { size: 3, template: 'web', drainTimeout: '2m', disruption: ONE_AT_A_TIME, ...fields },
      worker: { size: 2, min: 1, template: 'worker', drainTimeout: '2m' },
    },
    other: { web: { size: 2, template: 'web' } },
  });

const counted = (harness: Harness, tenant: string, group: string): number => harness.live(tenant, group).filter((i) => i.status === 'creating' || i.status === 'running').length;
const present = (harness: Harness, tenant: string, group: string): number => harness.live(tenant, group).filter((i) => i.status !== 'deleted').length;
const sleepAudit = (harness: Harness): string[] =>
  harness.db
    .listAudit({ tenant: 'acme' })
    .filter((a: AuditEntry) => a.action === 'sleep' || a.action === 'wake' || a.action === 'scale')
    .map((a) => `${a.action} ${a.group} ${a.actor} ${a.detail}`);

describe('tenant sleep', () => {
  it("takes a sleeping tenant's groups to 0 through the scale-down budget without changing their sizes, and waking restores them", async () => {
    h = new Harness({ config: twoTenants() });
    await h.start();
    await h.runHealthy(2 * MIN);
    expect(counted(h, 'acme', 'web')).toBe(3);

    const change = await h.reconciler.sleepTenant('acme', null, 'operator:alice');
    expect(change).toMatchObject({ tenant: 'acme', groups: ['web', 'worker'], changed: true, sleep: { until: null, by: 'operator:alice' } });
    await h.settle();
    // The budget lets one drain at a time: the others wait for it.
    expect(h.byStatus('draining', 'acme', 'web')).toHaveLength(1);
    expect(h.reconciler.plan('acme', 'web').blocked.map((b) => b.code)).toContain('BudgetExhausted');
    let mostDraining = 0;
    for (let i = 0; i < 12; i++) {
      await h.runHealthy(MIN, 10_000);
      mostDraining = Math.max(mostDraining, h.byStatus('draining', 'acme', 'web').length);
    }
    expect(mostDraining).toBe(1);
    expect(present(h, 'acme', 'web')).toBe(0);
    expect(present(h, 'acme', 'worker')).toBe(0); // min does not hold a sleeping group up
    expect(counted(h, 'other', 'web')).toBe(2); // another tenant is not touched
    expect(h.loader.getCurrent().groups.acme?.web?.size).toBe(3);
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 0, awakeSize: 3, source: 'config', sleeping: { by: 'operator:alice', until: null } });
    expect(h.reconciler.plan('acme', 'web').summary.size).toBe(0);

    await h.reconciler.wakeTenant('acme', 'operator:bob');
    await h.runHealthy(2 * MIN);
    expect(counted(h, 'acme', 'web')).toBe(3);
    expect(counted(h, 'acme', 'worker')).toBe(2);
    expect(sleepAudit(h)).toEqual([
      'sleep web operator:alice size 3 -> 0: asleep until woken',
      'sleep worker operator:alice size 2 -> 0: asleep until woken',
      'wake web operator:bob size 0 -> 3: woken by operator:bob',
      'wake worker operator:bob size 0 -> 2: woken by operator:bob',
    ]);
    // The instances left as a scale-down does.
    expect(h.db.listAudit({ tenant: 'acme', group: 'web' }).filter((a) => a.action === 'drain').every((a) => a.reason === 'scaleDown')).toBe(true);
  });

  it('cancels creates not yet sent when a sleep starts', async () => {
    h = new Harness({ config: twoTenants(), reconciler: { createRateLimitMs: 60_000 } });
    await h.reconciler.start();
    await h.clock.advance(1);
    const waiting = h.live('acme', 'web').filter((i) => i.status === 'creating');
    expect(waiting.length).toBeGreaterThan(0);
    await h.reconciler.sleepTenant('acme', null, 'operator:alice');
    await h.run(10 * MIN, 10_000);
    expect(present(h, 'acme', 'web')).toBe(0);
    expect(present(h, 'acme', 'worker')).toBe(0);
    expect(h.cloud('web', 'acme')).toHaveLength(0);
  });

  it('stays asleep across a restart, and wakes by the clock at until, audited once by the reconciler', async () => {
    h = new Harness({ config: twoTenants() });
    await h.start();
    await h.runHealthy(2 * MIN);
    const until = new Date(h.clock.nowMs() + 60 * MIN);
    await h.reconciler.sleepTenant('acme', until, 'operator:alice');
    await h.runHealthy(15 * MIN, 10_000);
    expect(present(h, 'acme', 'web')).toBe(0);
    await h.crashAndRestart();
    expect(h.reconciler.tenantSleep('acme')).toMatchObject({ until: until.toISOString(), by: 'operator:alice' });
    await h.runHealthy(30 * MIN, 10_000);
    expect(present(h, 'acme', 'web')).toBe(0);
    // The plan's timer for `until` replans the groups then: no other event is needed.
    await h.clock.advanceTo(until.getTime());
    await h.settle();
    expect(h.reconciler.operatorState.get<TenantSleep>(keys.sleep('acme'))).toBeUndefined();
    expect(counted(h, 'acme', 'web')).toBeGreaterThan(0);
    await h.runHealthy(5 * MIN);
    expect(counted(h, 'acme', 'web')).toBe(3);
    await h.crashAndRestart();
    await h.runHealthy(MIN);
    const wakes = h.db.listAudit({ tenant: 'acme' }).filter((a) => a.action === 'wake');
    expect(wakes.map((a) => [a.group, a.actor, a.at.toISOString()])).toEqual([
      ['web', 'reconciler', until.toISOString()],
      ['worker', 'reconciler', until.toISOString()],
    ]);
    expect(h.db.listAudit({ tenant: 'acme' }).filter((a) => a.action === 'sleep')).toHaveLength(2);
  });

  it('wakes at start a tenant whose until passed while the server was down', async () => {
    h = new Harness({ config: twoTenants() });
    await h.start();
    await h.reconciler.sleepTenant('acme', new Date(h.clock.nowMs() + 10 * MIN), 'operator:alice');
    await h.crash();
    await h.clock.advance(30 * MIN);
    await h.restart();
    expect(h.reconciler.tenantSleep('acme')).toBeNull();
    expect(h.db.listAudit({ tenant: 'acme' }).filter((a) => a.action === 'wake').map((a) => a.actor)).toEqual(['reconciler', 'reconciler']);
    await h.runHealthy(3 * MIN);
    expect(counted(h, 'acme', 'web')).toBe(3);
  });

  it('changes when a sleeping tenant wakes without a second sleep of its groups, and a wake of an awake tenant does nothing', async () => {
    h = await new Harness({ config: twoTenants() }).start();
    expect(await h.reconciler.wakeTenant('acme', 'operator:bob')).toMatchObject({ changed: false, sleep: null });
    const first = await h.reconciler.sleepTenant('acme', null, 'operator:alice');
    await h.tick(MIN);
    const until = new Date(h.clock.nowMs() + 60 * MIN);
    const second = await h.reconciler.sleepTenant('acme', until, 'operator:carol');
    // It has slept since the first call, by the first caller; only its end moved.
    expect(second.sleep).toEqual({ until: until.toISOString(), at: first.sleep!.at, by: 'operator:alice' });
    expect(sleepAudit(h)).toEqual([
      'sleep web operator:alice size 3 -> 0: asleep until woken',
      'sleep worker operator:alice size 2 -> 0: asleep until woken',
      `sleep web operator:carol asleep until ${until.toISOString()} (was until woken)`,
      `sleep worker operator:carol asleep until ${until.toISOString()} (was until woken)`,
    ]);
  });
});
