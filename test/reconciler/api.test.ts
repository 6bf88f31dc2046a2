import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigLoader,
  DefaultInstanceManager,
  EventType,
  InternalError,
  ManualClock,
  PermanentError,
  Reconciler,
  SimProvider,
  newPermanentError,
  openLocalDb,
  type ReconcileEvent,
  type ReconcilerOptions,
} from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function fullOptions(): ReconcilerOptions {
  const clock = new ManualClock();
  const localDb = openLocalDb(':memory:');
  const provider = new SimProvider({ clock });
  const configLoader = ConfigLoader.fromObject({ allowEmpty: true });
  return {
    instanceManager: new DefaultInstanceManager({ localDb, provider, configLoader, clock }),
    configLoader,
    localDb,
    provider,
    notifyDrain: () => undefined,
    isLeader: () => true,
    clock,
  };
}

describe('public API', () => {
  it('exposes exactly the six event types of the seed, with values equal to their names', () => {
    expect(Object.keys(EventType).sort()).toEqual(
      ['CheckInstance', 'DrainAcked', 'GroupChanged', 'InitialReconcile', 'InstanceDeleted', 'TerminationNotice'].sort(),
    );
    for (const [name, value] of Object.entries(EventType)) expect(value).toBe(name);
  });

  it.each(['instanceManager', 'configLoader', 'localDb', 'provider', 'notifyDrain', 'isLeader'] as const)(
    'refuses to build without %s, naming it (InternalError: a caller broke the contract)',
    (name) => {
      const options: Partial<ReconcilerOptions> = fullOptions();
      delete options[name];
      expect(() => new Reconciler(options as ReconcilerOptions)).toThrow(InternalError);
      expect(() => new Reconciler(options as ReconcilerOptions)).toThrow(new RegExp(name));
    },
  );

  it('builds with only the required options', () => {
    expect(new Reconciler(fullOptions())).toBeInstanceOf(Reconciler);
  });

  it('wraps an error as permanent, keeping it as the cause', () => {
    const inner = new Error('quota exceeded');
    const permanent = newPermanentError(inner);
    expect(permanent).toBeInstanceOf(PermanentError);
    expect(permanent).toBeInstanceOf(Error);
    expect(permanent.cause).toBe(inner);
    expect(permanent.message).toContain('quota exceeded');
    expect(permanent.retryable).toBe(false);
    expect(newPermanentError(permanent)).toBe(permanent);
  });

  it('never throws from enqueue, whatever it is given', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 1, template: 'web' } } }) }).start();
    const bad: unknown[] = [null, undefined, 42, {}, { type: 'Bogus' }, { type: EventType.CheckInstance }, { type: EventType.DrainAcked, tenant: 'default' }];
    for (const event of bad) expect(() => h!.reconciler.enqueue(event as ReconcileEvent)).not.toThrow();
    await h.settle();
    expect(h.errors.length).toBeGreaterThanOrEqual(3);
    expect(h.byStatus('running')).toHaveLength(1);
  });

  it('resolves an event that names only an instance to that instance’s group', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 1, template: 'web' } } }) }).start();
    const [inst] = h.byStatus('running');
    h.provider.setStatus(inst!.id, 'stopped');
    h.reconciler.enqueue({ type: EventType.CheckInstance, instanceId: inst!.id });
    await h.settle();
    expect(h.db.getInstance(inst!.id)?.status).toBe('deleted');
  });

  it('answers plan() without side effects', async () => {
    h = new Harness({ config: configWith({ default: { web: { size: 3, template: 'web' } } }), reconciler: { initialReconcileOnStart: false } });
    await h.start();
    const plan = h.reconciler.plan('default', 'web');
    expect(plan.actions.filter((a) => a.kind === 'create')).toHaveLength(3);
    for (const action of plan.actions) expect(action.message.length).toBeGreaterThan(0);
    expect(plan.summary).toMatchObject({ size: 3, live: 0, maxLive: 4 });
    // Nothing was done.
    await h.settle();
    expect(h.db.listInstances({ includeDeleted: true })).toHaveLength(0);
    expect(h.provider.stats.create).toBe(0);
    expect(h.db.listAudit()).toHaveLength(0);
  });

  it('can be stopped gracefully, after which enqueue does nothing', async () => {
    h = await new Harness({ config: configWith({ default: { web: { size: 2, template: 'web' } } }) }).start();
    await h.reconciler.stop();
    const creates = h.provider.stats.create;
    h.loader.update(configWith({ default: { web: { size: 5, template: 'web' } } }));
    h.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'default', groupKey: 'web' });
    await h.clock.advance(60_000);
    expect(h.provider.stats.create).toBe(creates);
  });
});
