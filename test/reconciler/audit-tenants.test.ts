import { afterEach, describe, expect, it } from 'vitest';
import { EventType } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('audit', () => {
  it('records every create, drain, delete and ack with its reason and the event that led to it', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web', drainTimeout: '5m' } } }) }).start();
    h.reportHealthy();
    await h.settle();
    h.loader.update(configWith({ default: { web: { size: 1, template: 'web', drainTimeout: '5m' } } }));
    await h.settle();
    const [victim] = h.byStatus('draining');
    h.reconciler.enqueue({ type: EventType.DrainAcked, tenant: 'default', groupKey: 'web', instanceId: victim!.id, cause: 'operator:alice' });
    await h.settle();

    const trail = h.db.listAudit({ instanceId: victim!.id });
    expect(trail.map((a) => a.action)).toEqual(['create', 'created', 'drain', 'drainAcked', 'delete', 'deleted']);
    expect(trail.find((a) => a.action === 'create')).toMatchObject({ reason: 'scaleUp', event: 'GroupChanged(initial)' });
    expect(trail.find((a) => a.action === 'drain')).toMatchObject({ reason: 'scaleDown', event: expect.stringMatching(/^GroupChanged\(.*config.*\)$/) });
    expect(trail.find((a) => a.action === 'drainAcked')).toMatchObject({ actor: 'operator:alice', event: 'DrainAcked(operator:alice)' });
    expect(trail.find((a) => a.action === 'delete')).toMatchObject({ reason: 'drainAcked' });
    for (const entry of trail) expect(entry.tenant).toBe('default');
    // Filters by group too.
    expect(h.db.listAudit({ tenant: 'default', group: 'web' }).length).toBeGreaterThanOrEqual(trail.length);
    expect(h.db.listAudit({ tenant: 'other' })).toHaveLength(0);
  });

  it('records what a replacement replaces and why', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web' } } }) }).start();
    h.reportHealthy();
    const [dead] = h.byStatus('running');
    h.provider.setStatus(dead!.id, 'terminated');
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: dead!.id, cause: 'disconnect' });
    await h.settle();
    const replacement = h.byStatus('running').find((i) => i.replaces === dead!.id)!;
    const create = h.db.listAudit({ instanceId: replacement.id }).find((a) => a.action === 'create')!;
    expect(create.reason).toBe('terminated');
    expect(create.detail).toContain(dead!.id);
    expect(create.event).toBe('CheckInstance(disconnect)');
  });
});

describe('tenants', () => {
  const twoTenants = (aSize: number, bSize: number) =>
    configWith({ acme: { web: { size: aSize, template: 'web', drainTimeout: '5m' } }, globex: { web: { size: bSize, template: 'web', drainTimeout: '5m' } } });

  it('keeps groups of the same name apart across tenants', async () => {
    h = await new Harness({ config: twoTenants(2, 3) }).start();
    expect(h.live('acme', 'web')).toHaveLength(2);
    expect(h.live('globex', 'web')).toHaveLength(3);
    h.reportHealthy();
    h.loader.update(twoTenants(1, 3));
    await h.settle();
    expect(h.byStatus('draining', 'acme', 'web')).toHaveLength(1);
    expect(h.byStatus('draining', 'globex', 'web')).toHaveLength(0);
    expect(h.drains.every((d) => d.group === 'acme/web')).toBe(true);
  });

  it('ignores an event that names an instance under another tenant', async () => {
    h = await new Harness({ config: twoTenants(2, 2) }).start();
    h.reportHealthy();
    h.loader.update(twoTenants(1, 2));
    await h.settle();
    const [draining] = h.byStatus('draining', 'acme', 'web');
    const [globexOne] = h.byStatus('running', 'globex', 'web');
    // Right instance, wrong tenant: no effect.
    h.reconciler.enqueue({ type: EventType.DrainAcked, tenant: 'globex', groupKey: 'web', instanceId: draining!.id });
    h.provider.setStatus(globexOne!.id, 'stopped');
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'acme', groupKey: 'web', instanceId: globexOne!.id });
    await h.settle();
    expect(h.db.getInstance(draining!.id)?.status).toBe('draining');
    expect(h.db.getInstance(globexOne!.id)?.status).toBe('running');
    expect(h.errors.some((e) => e.group === 'globex/web' && e.instanceId === draining!.id)).toBe(true);
  });

  it('tags every instance with its tenant and group', async () => {
    h = await new Harness({ config: twoTenants(1, 1) }).start();
    const tenants = h.provider.instances().map((i) => `${i.tags['drover:tenant']}/${i.tags['drover:group']}`).sort();
    expect(tenants).toEqual(['acme/web', 'globex/web']);
  });
});
