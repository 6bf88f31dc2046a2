/**
 * Launch hooks over the API (POST /v1/instances/{id}/hooks/launch), from the instance itself
 * (its agent's `launchHook` request, what `drover self ready` sends) and by timeout on the
 * injected clock: a hook holds a new instance out of service until completed, abandon replaces
 * it, and each outcome is audited.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import type { GroupView, InstanceView } from '../../src/server/views.js';
import type { NotificationEvent } from '../../src/notifications/index.js';
import { FakeAgent, TestServer } from '../helpers/server-harness.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

let t: TestServer | undefined;
const agents: FakeAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.drop().catch(() => undefined)));
  await t?.close();
  t = undefined;
});

const ADMIN = 'admin-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const as = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` });
const MIN = 60_000;
// Health every 10 minutes (stale after 30): advancing the clock past a hook's timeout does not
// make an instance unhealthy, and it has an hour to report its first health.
const QUIET = { healthCheckInterval: '10m', startupTimeout: '1h', resyncInterval: '0s' };
const hooked = (launch: Record<string, unknown> = {}, size = 2): Record<string, unknown> => ({ size, template: 'web', drainTimeout: '1m', hooks: { launch } });

async function start(groups: Record<string, Record<string, Record<string, unknown>>>, clock = new ManualClock(new Date('2026-02-02T10:00:00Z'))): Promise<{ server: TestServer; clock: ManualClock }> {
  const server = new TestServer({ token: ADMIN, groups, shard: QUIET, clock });
  server.writeConfig({
    server: {
      tokens: [
        { name: 'team-a', sha256: sha256(TEAM_A), role: 'operator', tenants: ['a'] },
        { name: 'grafana', sha256: sha256(VIEWER), role: 'viewer' },
      ],
    },
  });
  await server.start();
  await server.settle();
  // Every instance runs and reports health: only its launch hook may keep it out of service.
  for (const i of server.server.db.listInstances()) server.server.db.recordHealth(i.id, clock.now());
  await server.settle();
  return { server, clock };
}

const group = async (server: TestServer, tenant: string, name: string): Promise<GroupView> => (await server.api<GroupView>('GET', `/v1/groups/${tenant}/${name}`)).body;
const live = (server: TestServer, tenant: string, name: string) => server.server.db.listInstances().filter((i) => i.tenant === tenant && i.group === name);

describe('launch hooks over the API', () => {
  it('holds new instances out of service until their launch hook is continued', async () => {
    ({ server: t } = await start({ a: { web: hooked() } }));
    const [first, second] = live(t, 'a', 'web');
    expect(await group(t, 'a', 'web')).toMatchObject({ size: 2, inService: 0, pending: 2, launchHookPending: 2 });
    expect((await t.api<InstanceView>('GET', `/v1/instances/${first!.id}`)).body).toMatchObject({ launchHook: 'pending', launchHookAt: null });
    const plan = (await t.api<{ blocked: Array<{ code: string; instanceId: string | null }> }>('GET', '/v1/groups/a/web/plan')).body;
    expect(plan.blocked.filter((b) => b.code === 'LaunchHookPending').map((b) => b.instanceId).sort()).toEqual([first!.id, second!.id].sort());

    const res = await t.api('POST', `/v1/instances/${first!.id}/hooks/launch`, { result: 'continue' }, { 'X-Drover-Actor': 'alice' });
    expect(res).toMatchObject({ status: 200, body: { instanceId: first!.id, result: 'continue', launchHook: 'continued' } });
    await t.settle();
    expect(await group(t, 'a', 'web')).toMatchObject({ inService: 1, pending: 1, launchHookPending: 1 });
    expect((await t.api<InstanceView>('GET', `/v1/instances/${first!.id}`)).body.launchHook).toBe('continued');
    const audit = t.server.db.listAudit({ instanceId: first!.id }).find((a) => a.action === 'launchHookContinued');
    expect(audit).toMatchObject({ reason: 'continue', actor: 'operator:alice' });
    // Nothing was replaced: both instances are still there.
    expect(live(t, 'a', 'web').map((i) => i.id).sort()).toEqual([first!.id, second!.id].sort());
  });

  it('replaces an instance whose launch hook is abandoned, and audits why', async () => {
    ({ server: t } = await start({ a: { web: hooked() } }));
    const [victim] = live(t, 'a', 'web');
    const res = await t.api('POST', `/v1/instances/${victim!.id}/hooks/launch`, { result: 'abandon' });
    expect(res).toMatchObject({ status: 200, body: { result: 'abandon', launchHook: 'abandoned' } });
    await t.settle();
    expect(t.server.db.getInstance(victim!.id)).toMatchObject({ status: 'deleted', deleteReason: 'launchHookAbandoned' });
    const actions = t.server.db.listAudit({ instanceId: victim!.id }).map((a) => `${a.action}:${a.reason}`);
    expect(actions).toEqual(expect.arrayContaining(['launchHookAbandoned:abandon', 'delete:launchHookAbandoned', 'deleted:launchHookAbandoned']));
    const replacement = live(t, 'a', 'web').find((i) => i.replaces === victim!.id);
    expect(replacement).toMatchObject({ createReason: 'launchHookAbandoned', launchHook: 'pending' });
    expect(live(t, 'a', 'web')).toHaveLength(2);
  });

  it.each([
    [{}, /result: result must be "continue" or "abandon"/],
    [{ result: 'maybe' }, /result must be "continue" or "abandon"/],
    [{ result: 'continue', force: true }, /force/],
    ['"continue"', /the body must be a JSON object/],
  ])('refuses the body %j with a 400 naming the problem, and changes nothing', async (body, message) => {
    ({ server: t } = await start({ a: { web: hooked({}, 1) } }));
    const [i] = live(t, 'a', 'web');
    const res = await t.api<{ error: string }>('POST', `/v1/instances/${i!.id}/hooks/launch`, body);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(message);
    expect(t.server.db.getInstance(i!.id)?.launchHook).toBe('pending');
  });

  it('answers 404 for an unknown instance and 409 when no launch hook is pending', async () => {
    ({ server: t } = await start({ a: { web: hooked({}, 1), plain: { size: 1, template: 'web' } } }));
    expect((await t.api<{ error: string }>('POST', '/v1/instances/i-nope/hooks/launch', { result: 'continue' })).status).toBe(404);
    const [plain] = live(t, 'a', 'plain');
    const none = await t.api<{ error: string }>('POST', `/v1/instances/${plain!.id}/hooks/launch`, { result: 'continue' });
    expect(none).toMatchObject({ status: 409, body: { error: `instance ${plain!.id} has no launch hook pending: its group had no launch hook when it was created` } });
    const [i] = live(t, 'a', 'web');
    expect((await t.api('POST', `/v1/instances/${i!.id}/hooks/launch`, { result: 'continue' })).status).toBe(200);
    const again = await t.api<{ error: string }>('POST', `/v1/instances/${i!.id}/hooks/launch`, { result: 'abandon' });
    expect(again).toMatchObject({ status: 409, body: { error: `instance ${i!.id} has no launch hook pending: it was continued already` } });
    // The refused abandon changed nothing.
    await t.settle();
    expect(t.server.db.getInstance(i!.id)?.status).toBe('running');
    expect(t.server.db.listAudit({ instanceId: i!.id }).filter((a) => a.action.startsWith('launchHook'))).toHaveLength(1);
  });

  it("limits a tenant's token to its tenants' instances, and a viewer to reading", async () => {
    ({ server: t } = await start({ a: { web: hooked({}, 1) }, b: { web: hooked({}, 1) } }));
    const [inA] = live(t, 'a', 'web');
    const [inB] = live(t, 'b', 'web');
    const foreign = await t.api<{ error: string }>('POST', `/v1/instances/${inB!.id}/hooks/launch`, { result: 'abandon' }, as(TEAM_A));
    expect(foreign).toMatchObject({ status: 404, body: { error: `instance ${inB!.id} not found` } });
    const viewer = await t.api('POST', `/v1/instances/${inA!.id}/hooks/launch`, { result: 'continue' }, as(VIEWER));
    expect(viewer.status).toBe(403);
    expect(t.server.db.getInstance(inB!.id)?.launchHook).toBe('pending');
    expect(t.server.db.getInstance(inA!.id)?.launchHook).toBe('pending');
    const own = await t.api('POST', `/v1/instances/${inA!.id}/hooks/launch`, { result: 'continue' }, as(TEAM_A));
    expect(own.status).toBe(200);
    expect(t.server.db.listAudit({ instanceId: inA!.id }).find((a) => a.action === 'launchHookContinued')?.actor).toMatch(/^operator:team-a/);
  });

  it('continues a launch hook nobody completed when its timeout passes, with onTimeout continue', async () => {
    let clock: ManualClock;
    ({ server: t, clock } = await start({ a: { web: hooked({ timeout: '10m', onTimeout: 'continue' }, 1) } }));
    const [i] = live(t, 'a', 'web');
    const confirmedAt = t.server.db.getInstance(i!.id)!.confirmedAt!.getTime();
    // The timeout is the group's durable wake-up timer, kept in the store (it survives a restart).
    expect(t.server.db.listTimers().map((r) => r.dueAt)).toContain(confirmedAt + 10 * MIN);
    await clock.advanceTo(confirmedAt + 10 * MIN - 1);
    await t.settle();
    expect(t.server.db.getInstance(i!.id)?.launchHook).toBe('pending');
    await clock.advanceTo(confirmedAt + 10 * MIN);
    await t.settle();
    expect(t.server.db.getInstance(i!.id)).toMatchObject({ status: 'running', launchHook: 'continued', launchHookAt: new Date(confirmedAt + 10 * MIN) });
    expect(t.server.db.listAudit({ instanceId: i!.id }).find((a) => a.action === 'launchHookTimedOut')).toMatchObject({ reason: 'continue', actor: 'reconciler' });
    t.server.db.recordHealth(i!.id, clock.now());
    await t.settle();
    expect(await group(t, 'a', 'web')).toMatchObject({ inService: 1, pending: 0 });
  });

  it('replaces an instance whose launch hook times out, with onTimeout abandon (the default)', async () => {
    let clock: ManualClock;
    ({ server: t, clock } = await start({ a: { web: hooked({ timeout: '5m' }, 1) } }));
    const [i] = live(t, 'a', 'web');
    const confirmedAt = t.server.db.getInstance(i!.id)!.confirmedAt!.getTime();
    await clock.advanceTo(confirmedAt + 5 * MIN);
    await t.settle();
    expect(t.server.db.getInstance(i!.id)).toMatchObject({ status: 'deleted', deleteReason: 'launchHookAbandoned', launchHook: 'abandoned' });
    const actions = t.server.db.listAudit({ instanceId: i!.id }).map((a) => `${a.action}:${a.reason}`);
    expect(actions).toEqual(expect.arrayContaining(['launchHookTimedOut:abandon', 'delete:launchHookAbandoned']));
    expect(live(t, 'a', 'web')).toEqual([expect.objectContaining({ replaces: i!.id, launchHook: 'pending' })]);
  });

  it('keeps a pending launch hook across a leader that lost its store: the new one adopts it from the provider tags', async () => {
    const clock = new ManualClock(new Date('2026-02-02T10:00:00Z'));
    const { server: first } = await start({ a: { web: hooked({}, 2) } }, clock);
    try {
      const [done, waiting] = live(first, 'a', 'web');
      expect((await first.api('POST', `/v1/instances/${done!.id}/hooks/launch`, { result: 'continue' })).status).toBe(200);
      await first.settle();
      await first.stop();
      // A new server with an empty store over the same provider: it adopts both instances.
      t = new TestServer({ token: ADMIN, groups: { a: { web: hooked({}, 2) } }, shard: QUIET, clock, provider: first.provider });
      await t.start();
      await t.settle();
      expect(t.server.db.getInstance(done!.id)).toMatchObject({ createReason: 'adopted', launchHook: 'continued' });
      expect(t.server.db.getInstance(waiting!.id)).toMatchObject({ createReason: 'adopted', launchHook: 'pending' });
      for (const i of live(t, 'a', 'web')) t.server.db.recordHealth(i.id, clock.now());
      await t.settle();
      expect(await group(t, 'a', 'web')).toMatchObject({ inService: 1, launchHookPending: 1 });
    } finally {
      await first.close();
    }
  });

  it('sends each outcome to webhooks as launchHookCompleted, with its result', async () => {
    const receiver = await WebhookReceiver.start();
    try {
      t = new TestServer({ token: ADMIN, groups: { a: { web: hooked({}, 2) } }, shard: QUIET });
      const secretFile = join(t.dir, 'hook.secret');
      writeFileSync(secretFile, 'webhook-secret-0123456789\n', { mode: 0o600 });
      t.writeConfig({ notifications: [{ name: 'ops', url: receiver.url, secretFile, events: ['launchHookCompleted'] }] });
      await t.start();
      await t.settle();
      const [one, two] = live(t, 'a', 'web');
      expect((await t.api('POST', `/v1/instances/${one!.id}/hooks/launch`, { result: 'continue' })).status).toBe(200);
      expect((await t.api('POST', `/v1/instances/${two!.id}/hooks/launch`, { result: 'abandon' })).status).toBe(200);
      const events = (): NotificationEvent[] => receiver.accepted().map((r) => JSON.parse(r.body) as NotificationEvent);
      await receiver.until(() => events().length >= 2);
      expect(events()).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ type: 'launchHookCompleted', instanceId: one!.id, reason: 'continue', launchHook: { result: 'continue', timedOut: false } }),
          expect.objectContaining({ type: 'launchHookCompleted', instanceId: two!.id, reason: 'abandon', launchHook: { result: 'abandon', timedOut: false } }),
        ]),
      );
      expect(events()).toHaveLength(2);
    } finally {
      await receiver.close();
    }
  });

  it('lets the instance complete its own launch hook through its agent (drover self ready)', async () => {
    ({ server: t } = await start({ a: { web: hooked({}, 1) } }));
    const [i] = live(t, 'a', 'web');
    const agent = await FakeAgent.connect(t.url, i!.id, t.credential(i!.id));
    agents.push(agent);
    await agent.next((m) => m.type === 'welcome');
    agent.send({ type: 'launchHook', requestId: 'r-1', result: 'continue' });
    expect(await agent.next((m) => m.type === 'result' && m.requestId === 'r-1')).toMatchObject({ ok: true, message: 'launch hook completed: in service once healthy' });
    expect(t.server.db.listAudit({ instanceId: i!.id }).find((a) => a.action === 'launchHookContinued')?.actor).toBe(`workload:${i!.id}`);
    agent.send({ type: 'launchHook', requestId: 'r-2', result: 'continue' });
    expect(await agent.next((m) => m.type === 'result' && m.requestId === 'r-2')).toMatchObject({ ok: false, message: `instance ${i!.id} has no launch hook pending: it was continued already` });
  });
});
