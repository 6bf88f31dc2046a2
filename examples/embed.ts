/**
 * Embedding Drover's reconciler in your own program: a group of 3 on the in-process SimProvider,
 * then one instance crashes and is replaced. Run with `npx tsx examples/embed.ts`.
 */
import {
  ConfigLoader,
  DefaultInstanceManager,
  EventType,
  Reconciler,
  SimProvider,
  SystemClock,
  openLocalDb,
} from '../src/index.js';

export async function main(log: (line: string) => void = console.log): Promise<number> {
  const clock = new SystemClock();
  const configLoader = ConfigLoader.fromObject({
    shard: { id: 'example', healthCheckInterval: '10s' },
    templates: { web: { image: 'nginx:1.27', cpu: 2 } },
    groups: { default: { web: { size: 3, template: 'web', drainTimeout: '30s' } } },
  });
  const localDb = openLocalDb(':memory:');
  const provider = new SimProvider({ clock, createLatencyMs: 20 });
  const reconciler = new Reconciler({
    instanceManager: new DefaultInstanceManager({ localDb, provider, configLoader, clock }),
    configLoader,
    localDb,
    provider,
    clock,
    isLeader: () => true,
    notifyDrain: (id, group, reason, _unhealthyAt, deleteAt) => log(`drain ${id} of ${group} (${reason}) by ${deleteAt.toISOString()}`),
    notifyError: (group, id, message) => log(`error in ${group} ${id}: ${message}`),
  });

  await reconciler.start(); // restores timers and runs InitialReconcile
  await reconciler.idle();
  const running = localDb.listInstances({ tenant: 'default', group: 'web' });
  log(`running: ${running.map((i) => i.id).join(', ')}`);

  // An instance dies; whoever notices (an agent disconnect, a cloud event) enqueues a check.
  const [victim] = running;
  if (victim) {
    provider.setStatus(victim.id, 'terminated');
    reconciler.enqueue({ type: EventType.CheckInstance, tenant: 'default', groupKey: 'web', instanceId: victim.id, cause: 'example' });
    await reconciler.idle();
  }
  for (const entry of localDb.listAudit({ tenant: 'default', group: 'web' })) {
    log(`${entry.at.toISOString()} ${entry.action} ${entry.instanceId ?? ''} (${entry.reason}) ${entry.detail ?? ''}`);
  }
  const live = localDb.listInstances({ tenant: 'default', group: 'web' }).length;
  await reconciler.stop();
  localDb.close();
  return live;
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
