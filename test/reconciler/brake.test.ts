/**
 * The health brake holds a correlated failure (manual clock). Five instances, maxUnhealthy 40%
 * (2); four freeze within 220 ms of each other and are seen stopped one by one, as the agent
 * endpoint's pings find them. The settle delay counts them together: the brake trips before any
 * is replaced; Drover's own deletes never lower the count that holds it; it releases only when
 * they recover (or the window passes).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventType, type InstanceRecord } from '../../src/index.js';
import { Harness, configWith } from '../helpers/harness.js';

const SEC = 1_000;
let h: Harness;
afterEach(async () => {
  await h.close();
});

function fleet(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return configWith(
    { default: { web: { size: 5, template: 'web', drainTimeout: '10s', disruption: { maxUnhealthy: '40%', ...extra } } } },
    { healthCheckInterval: '1s', missedHealthThreshold: 3, resyncInterval: '0s' },
  );
}

/** Instances deleted or draining for their health (replaced). */
const replacedForHealth = (): InstanceRecord[] =>
  h.db.listInstances({ includeDeleted: true }).filter((i) => i.drainReason === 'unhealthy' || ['terminated', 'unhealthy', 'startupTimeout'].includes(i.deleteReason ?? ''));

const groupAudit = (): string[] => h.db.listAudit({ tenant: 'default', group: 'web' }).filter((a) => a.instanceId === null).map((a) => a.action);

/** Freezes instances: the provider sees them stopped, and each is checked (a dropped agent connection) at its own moment. */
async function freeze(instances: readonly InstanceRecord[], gapsMs: readonly number[]): Promise<void> {
  for (const i of instances) h.provider.setStatus(i.providerId!, 'stopped');
  for (const [k, i] of instances.entries()) {
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: i.id, cause: 'disconnect', timestamp: h.clock.now() });
    await h.run(gapsMs[k] ?? 0, 10);
  }
}

describe('the health brake under a correlated failure', () => {
  it('trips before replacing more than one of four instances frozen together, holds, and releases when they recover', async () => {
    h = await new Harness({ config: fleet() }).start();
    await h.runHealthy(5 * SEC, SEC);
    const all = h.byStatus('running');
    expect(all).toHaveLength(5);
    const frozen = all.slice(0, 4);
    const frozenIds = frozen.map((i) => i.id);
    await freeze(frozen, [110, 90, 20, 0]);
    // The fifth keeps reporting; the frozen ones are silent.
    await h.runHealthy(60 * SEC, 250, frozenIds);
    // The settle delay (3 s: an interval plus the ping timeout) counted all four together.
    expect(replacedForHealth()).toEqual([]);
    const plan = h.reconciler.plan('default', 'web');
    expect(plan.summary.disruption.shortCircuited).toBe(true);
    const block = plan.blocked.find((b) => b.code === 'ShortCircuit');
    expect(block?.instanceIds).toEqual(expect.arrayContaining(frozenIds));
    expect(block?.message).toMatch(/health brake on: 4 unhealthy/);
    expect(groupAudit()).toEqual(['brakeTripped']);
    // It holds: hours pass, nothing more is replaced for health.
    await h.runHealthy(2 * 3_600 * SEC, 60 * SEC, frozenIds);
    expect(replacedForHealth()).toEqual([]);
    // They recover (SIGCONT): they report again, and the brake releases without replacing them.
    for (const i of frozen) h.provider.setStatus(i.providerId!, 'running');
    await h.runHealthy(30 * SEC, SEC);
    expect(h.reconciler.plan('default', 'web').summary.disruption.shortCircuited).toBe(false);
    expect(groupAudit()).toEqual(['brakeTripped', 'brakeReleased']);
    expect(replacedForHealth()).toEqual([]);
    expect(frozen.map((i) => h.db.getInstance(i.id)?.status)).toEqual(['running', 'running', 'running', 'running']);
  });

  it('counts instances already replaced for health until their replacements prove healthy, so its own deletes never release it', async () => {
    h = await new Harness({ config: fleet({ healthSettle: '0s' }) }).start();
    await h.runHealthy(5 * SEC, SEC);
    const [a, b, c] = h.byStatus('running');
    // Two fail one after the other: within the limit, each is replaced.
    await freeze([a!], [0]);
    await h.runHealthy(2 * SEC, 500, [a!.id]);
    await freeze([b!], [0]);
    await h.runHealthy(2 * SEC, 500, [a!.id, b!.id]);
    expect(h.db.getInstance(a!.id)?.status).toBe('deleted');
    expect(h.db.getInstance(b!.id)?.status).toBe('deleted');
    // A third fails while their replacements have not proved healthy for the window (9 s): 3 > 2.
    await freeze([c!], [0]);
    await h.runHealthy(2 * SEC, 500, [a!.id, b!.id, c!.id]);
    expect(h.db.getInstance(c!.id)?.status).toBe('running');
    const held = h.reconciler.plan('default', 'web').blocked.find((b2) => b2.code === 'ShortCircuit');
    expect(held?.message).toMatch(/1 unhealthy .* and 2 recently replaced for health/);
    expect(held?.until).toBeInstanceOf(Date);
    // The window passes (the replacements report healthy): the brake releases by itself and c is replaced.
    await h.runHealthy(15 * SEC, SEC, [c!.id]);
    expect(h.db.getInstance(c!.id)?.deleteReason).toBe('terminated');
    expect(groupAudit()).toEqual(['brakeTripped', 'brakeReleased']);
  });

  it('does not delay termination notices or instances the provider no longer has', async () => {
    h = await new Harness({ config: fleet({ healthSettle: '1h' }) }).start();
    await h.runHealthy(5 * SEC, SEC);
    const [noticed, vanished] = h.byStatus('running');
    h.reconciler.enqueue({ type: EventType.TerminationNotice, instanceId: noticed!.id, timestamp: new Date(h.clock.nowMs() + 60 * SEC) });
    h.provider.vanish(vanished!.providerId!);
    h.reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: vanished!.id });
    await h.runHealthy(3 * SEC, SEC, [vanished!.id]);
    expect(h.db.getInstance(noticed!.id)?.status).toBe('draining');
    expect(h.db.getInstance(vanished!.id)?.status).toBe('deleted');
    expect(h.live().filter((i) => i.status !== 'draining')).toHaveLength(5);
  });

  it('acts on a lone failure only after the settle delay', async () => {
    h = await new Harness({ config: fleet({ healthSettle: '5s' }) }).start();
    await h.runHealthy(5 * SEC, SEC);
    const [one] = h.byStatus('running');
    await freeze([one!], [0]);
    await h.runHealthy(4 * SEC, 500, [one!.id]);
    expect(h.db.getInstance(one!.id)?.status).toBe('running');
    expect(h.reconciler.plan('default', 'web').blocked.find((b) => b.code === 'HealthSettling')?.instanceId).toBe(one!.id);
    await h.runHealthy(2 * SEC, 500, [one!.id]);
    expect(h.db.getInstance(one!.id)?.deleteReason).toBe('terminated');
  });
});
