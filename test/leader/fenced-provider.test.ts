/**
 * FencedProvider: mutations are refused while the guard says this replica does not lead; a
 * refused create stays recorded (not failed) and is sent, with the same id, in the next term.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DefaultInstanceManager, EventType, ManualClock, NotLeaderError, Reconciler, SimProvider } from '../../src/index.js';
import { FencedProvider } from '../../src/leader/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('FencedProvider', () => {
  it('refuses create, delete and setTags when not the leader; reads pass; every mutation is logged with its epoch', async () => {
    const clock = new ManualClock();
    const sim = new SimProvider({ clock, seed: 1 });
    let leader = false;
    const lines: Array<{ obj: object; msg?: string }> = [];
    const log = { debug: () => undefined, info: (obj: object, msg?: string) => lines.push({ obj, msg }), warn: (obj: object, msg?: string) => lines.push({ obj, msg }), error: () => undefined };
    const fenced = new FencedProvider(sim, { isLeader: () => leader, epoch: () => (leader ? 7 : null) }, log);
    const req = { idempotencyKey: 'i-1', tags: { 'drover:shard': 's' }, template: { image: 'x' } };
    await expect(fenced.create(req)).rejects.toBeInstanceOf(NotLeaderError);
    expect(sim.stats.create).toBe(0);
    leader = true;
    const created = await fenced.create(req);
    await fenced.setTags!(created.providerId, { a: 'b' });
    leader = false;
    await expect(fenced.delete(created.providerId)).rejects.toBeInstanceOf(NotLeaderError);
    await expect(fenced.setTags!(created.providerId, { a: 'c' })).rejects.toBeInstanceOf(NotLeaderError);
    expect(await fenced.status(created.providerId)).toBe('running');
    expect((await fenced.list({ 'drover:shard': 's' })).map((i) => i.tags.a)).toEqual(['b']);
    expect(sim.stats.delete).toBe(0);
    expect(lines.filter((l) => l.msg === 'provider mutation').map((l) => l.obj)).toEqual([
      { op: 'create', id: 'i-1', epoch: 7 },
      { op: 'setTags', id: created.providerId, epoch: 7 },
    ]);
    expect(lines.filter((l) => l.msg === 'provider mutation refused: not the shard leader')).toHaveLength(3);
  });

  it('a create refused by the fence stays recorded and is sent with the same id in the next term', async () => {
    let fenceOpen = false;
    h = new Harness({ config: configWith({ default: { web: { size: 2, template: 'web' } } }) });
    const guarded = new FencedProvider(h.provider, { isLeader: () => fenceOpen, epoch: () => 1 });
    // The reconciler believes it leads; the fence (the lease's local deadline) says otherwise.
    h.reconciler = new Reconciler({
      instanceManager: new DefaultInstanceManager({ localDb: h.db, provider: guarded, configLoader: h.loader, clock: h.clock }),
      configLoader: h.loader,
      localDb: h.db,
      provider: guarded,
      clock: h.clock,
      isLeader: () => true,
      notifyDrain: () => undefined,
    });
    await h.reconciler.start();
    await h.tick(1_000);
    expect(h.provider.stats.create).toBe(0);
    const recorded = h.byStatus('creating').map((i) => i.id);
    expect(recorded).toHaveLength(2);
    expect(h.db.listAudit({}).filter((a) => a.action === 'createFailed')).toHaveLength(0);
    fenceOpen = true;
    h.reconciler.enqueue({ type: EventType.InitialReconcile, cause: 'leader' });
    await h.tick(1_000);
    expect(h.cloud().map((i) => i.idempotencyKey).sort()).toEqual([...recorded].sort());
  });
});
