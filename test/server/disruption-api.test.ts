import { afterEach, describe, expect, it } from 'vitest';
import type { InstanceView } from '../../src/server/views.js';
import { TestServer } from '../helpers/server-harness.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const groups = (extra: Record<string, unknown> = {}) => ({ default: { web: { size: 3, template: 'web', drainTimeout: '10m', maxSurge: 1, ...extra } } });

async function healthy(server: TestServer): Promise<void> {
  await server.settle();
  for (const i of server.server.db.listInstances()) server.server.db.recordHealth(i.id, new Date());
  await server.settle();
}

describe('disruption controls over the API', () => {
  it('protects an instance for a while, shows protectedUntil, and ends it on DELETE', async () => {
    t = await new TestServer({ groups: groups() }).start();
    await healthy(t);
    const [i] = t.server.db.listInstances();
    const res = await t.api<{ protectedUntil: string }>('PUT', `/v1/instances/${i!.id}/protection`, { for: '2h' }, { 'X-Drover-Actor': 'alice' });
    expect(res.status).toBe(200);
    const until = Date.parse(res.body.protectedUntil);
    expect(until - Date.now()).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect((await t.api<InstanceView>('GET', `/v1/instances/${i!.id}`)).body.protectedUntil).toBe(res.body.protectedUntil);
    expect(t.server.db.listAudit({ instanceId: i!.id }).find((a) => a.action === 'protect')?.actor).toBe('operator:alice');
    expect((await t.api('DELETE', `/v1/instances/${i!.id}/protection`)).status).toBe(200);
    expect((await t.api<InstanceView>('GET', `/v1/instances/${i!.id}`)).body.protectedUntil).toBeNull();
    const again = await t.api<{ error: string }>('DELETE', `/v1/instances/${i!.id}/protection`);
    expect(again).toMatchObject({ status: 409, body: { error: `instance ${i!.id} is not protected` } });
  });

  it.each([
    [{}, /give exactly one of "for" and "until"/],
    [{ for: 'soon' }, /must be a duration such as "10m"/],
    [{ until: 'tomorrow' }, /ISO-8601/],
    [{ for: '2h', until: '2030-01-01T00:00:00Z' }, /give exactly one of "for" and "until"/],
    [{ for: '90d' }, /at most 30d/],
  ])('rejects the protection body %j with a 400 naming the problem', async (body, message) => {
    t = await new TestServer({ groups: groups() }).start();
    await t.settle();
    const [i] = t.server.db.listInstances();
    const res = await t.api<{ error: string }>('PUT', `/v1/instances/${i!.id}/protection`, body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect((await t.api<InstanceView>('GET', `/v1/instances/${i!.id}`)).body.protectedUntil).toBeNull();
  });

  it('answers 404 for an unknown instance and 409 for a drain control that does not fit its state', async () => {
    t = await new TestServer({ groups: groups() }).start();
    await healthy(t);
    const [i] = t.server.db.listInstances();
    expect((await t.api('POST', '/v1/instances/i-nope/drain')).status).toBe(404);
    for (const path of ['drain-cancel', 'drain-force']) {
      const res = await t.api<{ error: string }>('POST', `/v1/instances/${i!.id}/${path}`);
      expect(res.status, path).toBe(409);
      expect(res.body.error).toBe(`instance ${i!.id} is not draining (status running)`);
    }
    const extend = await t.api<{ error: string }>('POST', `/v1/instances/${i!.id}/drain-extend`, { by: '10m' });
    expect(extend).toMatchObject({ status: 409 });
    expect((await t.api<{ error: string }>('POST', `/v1/instances/${i!.id}/drain-extend`, { by: 'forever' })).status).toBe(400);
  });

  it('refuses an operator drain with 409 naming the budget when it is spent, and accepts it forced', async () => {
    t = await new TestServer({ groups: groups({ disruption: { budgets: [{ max: 0, reasons: ['operator'] }] } }) }).start();
    await healthy(t);
    const [i] = t.server.db.listInstances();
    const refused = await t.api<{ error: string }>('POST', `/v1/instances/${i!.id}/drain`, {});
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatch(/^disruption\.budgets\[0\] \(max 0, operator\) is spent \(0 disrupted now\); retry later or force the drain$/);
    const forced = await t.api('POST', `/v1/instances/${i!.id}/drain`, { force: true });
    expect(forced).toMatchObject({ status: 202, body: { instanceId: i!.id, force: true, replacementFirst: true } });
    await t.settle();
    expect(t.server.db.listInstances().some((x) => x.replaces === i!.id && x.createReason === 'operator')).toBe(true);
  });

  it('extends, cancels and forces drains, and reports blocks with their codes on /v1/groups', async () => {
    t = await new TestServer({ groups: groups({ disruption: { maxDrainTimeout: '30m', budgets: [{ max: 1, reasons: ['scaleDown'] }] } }) }).start();
    await healthy(t);
    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await t.settle();
    const [d] = t.server.db.listInstances().filter((x) => x.status === 'draining');
    const group = (await t.api<{ blocked: Array<{ code: string; since: string | null }> }>('GET', '/v1/groups/default/web')).body;
    expect(group.blocked.map((b) => b.code)).toContain('BudgetExhausted');
    expect(group.blocked.find((b) => b.code === 'BudgetExhausted')?.since).not.toBeNull();
    const ext = await t.api<{ drainDeadline: string; capped: boolean }>('POST', `/v1/instances/${d!.id}/drain-extend`, { by: '1h' });
    expect(ext.status).toBe(200);
    expect(ext.body.capped).toBe(true);
    expect(Date.parse(ext.body.drainDeadline)).toBe(d!.drainStartedAt!.getTime() + 30 * 60_000);
    const cancel = await t.api<{ error: string }>('POST', `/v1/instances/${d!.id}/drain-cancel`);
    expect(cancel).toMatchObject({ status: 409, body: { error: `instance ${d!.id} drains for scaleDown, which cannot be cancelled (only operator, expiry and drift drains can)` } });
    expect((await t.api('POST', `/v1/instances/${d!.id}/drain-force`)).status).toBe(202);
    await t.settle();
    expect(t.server.db.getInstance(d!.id)?.status).toBe('deleted');
  });

  it('exposes budget and brake metrics', async () => {
    t = await new TestServer({ groups: groups({ disruption: { maxUnhealthy: 1, budgets: [{ max: '50%' }] } }) }).start();
    await healthy(t);
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toContain('drover_disruption_budget_allowed{tenant="default",group="web",reason="drift"} 2');
    expect(text).toContain('drover_disruption_budget_used{tenant="default",group="web",reason="scaleDown"} 0');
    expect(text).toContain('drover_group_short_circuited{tenant="default",group="web"} 0');
  });
});
