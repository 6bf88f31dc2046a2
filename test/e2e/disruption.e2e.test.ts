/**
 * Disruption controls end to end: a real server with the local provider, driven through the CLI.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { E2E_HEALTH_INTERVAL_MS, E2E_MISSED_HEALTH_THRESHOLD, ProcessServer, requireBuild, waitFor, type InstanceRow } from './process-harness.js';

let s: ProcessServer | undefined;
beforeAll(() => requireBuild());
afterEach(async () => {
  await s?.cleanup();
  s = undefined;
});

const atSize = (size: number) => (g: { size: number; inService: number; pending: number } | undefined) => g !== undefined && g.size === size && g.inService === size && g.pending === 0;

async function start(web: Record<string, unknown>, size: number): Promise<ProcessServer> {
  const server = new ProcessServer();
  await server.writeConfig(
    { default: { web: { size, template: 'web', drainTimeout: '20s', maxSurge: 1, ...web } } },
    { templates: { web: { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], drainCommand: ['sh', '-c', 'sleep 1'] } } },
  );
  await server.start();
  await waitFor('group at size', () => server.group('default', 'web'), atSize(size), 45_000);
  return server;
}

describe('disruption controls through the CLI', { timeout: 120_000 }, () => {
  it('keeps a protected instance through a scale-down, and explains what blocks', async () => {
    s = await start({ disruption: { budgets: [{ max: 1, reasons: ['scaleDown'] }] } }, 3);
    const [keep] = await s.instances();
    const prot = s.cli(['protect', keep!.id, '--for', '2h']);
    expect(prot.status, prot.stderr).toBe(0);
    expect(prot.stdout).toMatch(new RegExp(`${keep!.id} protected until \\d{4}-`));
    expect(s.cli(['scale', 'default/web', '1']).status).toBe(0);
    const explain = await waitFor('explain shows the budget block', () => s!.cli(['explain', 'default/web']), (r) => /BudgetExhausted/.test(r.stdout), 15_000);
    expect(explain.status).toBe(0);
    expect(explain.stdout).toMatch(/scaleDown\s+0\s+1\s+disruption\.budgets\[0\] \(max 1, scaleDown\)/);
    expect(explain.stdout).toMatch(new RegExp(`Protected\\s+${keep!.id}`));
    await waitFor('scaled down to 1', () => s!.group('default', 'web'), (g) => g !== undefined && g.live === 1, 60_000);
    expect((await s.instances()).map((i) => i.id)).toEqual([keep!.id]);
    const listed = s.cli(['instances', 'default/web', '-o', 'json']);
    expect((JSON.parse(listed.stdout) as Array<{ protectedUntil: string | null }>)[0]?.protectedUntil).not.toBeNull();
  });

  it('drains on request, replacement first; the drain command acknowledges; a spent budget is refused unless forced', async () => {
    s = await start({ disruption: { budgets: [{ max: 1, reasons: ['operator'] }] } }, 2);
    const [a, b] = await s.instances();
    const first = s.cli(['drain', 'start', a!.id]);
    expect(first.status, first.stderr).toBe(0);
    const refused = s.cli(['drain', 'start', b!.id]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/disruption\.budgets\[0\] \(max 1, operator\) is spent \(1 disrupted now\); retry later or force the drain \(HTTP 409\)/);
    // Replacement first: a new instance appears while the old one still serves.
    const replacement = await waitFor('replacement', async () => (await s!.instances()).find((i) => i.replaces === a!.id), (r) => r !== undefined, 15_000);
    expect(replacement!.createReason).toBe('operator');
    // Once the replacement reports healthy, the old one drains; its drainCommand exits 0 and acks.
    await waitFor('old one deleted', async () => (await s!.api<InstanceRow>('GET', `/v1/instances/${a!.id}`)).body.status, (st) => st === 'deleted', 45_000);
    const trail = (await s.api<Array<{ action: string; actor: string }>>('GET', `/v1/audit?instance=${a!.id}`)).body.map((x) => `${x.action}:${x.actor}`);
    expect(trail).toEqual(expect.arrayContaining([expect.stringMatching(/^drainRequested:operator:/), 'drain:reconciler', 'drainAcked:agent', 'deleted:reconciler']));
    const forced = s.cli(['drain', 'start', b!.id, '--force']);
    expect(forced.status, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/forced past the budget/);
  });

  it('holds the health brake when 4 of 5 instances freeze together: at most one replaced before it trips, none while it holds, all recover on SIGCONT', async () => {
    s = await start({ disruption: { maxUnhealthy: '40%' } }, 5);
    const instances = await s.instances();
    const frozen = instances.slice(0, 4);
    const pids = frozen.map((i) => s!.pidOf(i.id)!);
    const t0 = Date.now();
    for (const pid of pids) process.kill(-pid, 'SIGSTOP');
    const spreadMs = Date.now() - t0;
    // The brake's promise is for failures within one health interval of each other (they are
    // judged in the same ping round and settle together): the freezes must be that close for
    // the test to say anything.
    expect(spreadMs).toBeLessThan(E2E_HEALTH_INTERVAL_MS);
    const audit = async (): Promise<Array<{ action: string; instanceId: string | null; reason: string; at: string }>> =>
      (await s!.api<Array<{ action: string; instanceId: string | null; reason: string; at: string }>>('GET', '/v1/audit?group=default/web&limit=1000')).body;
    const healthDeletes = async (): Promise<string[]> =>
      (await audit()).filter((a) => (a.action === 'delete' || a.action === 'drain') && ['terminated', 'unhealthy'].includes(a.reason) && frozen.some((f) => f.id === a.instanceId)).map((a) => a.instanceId!);
    try {
      const tripped = await waitFor('the brake trips', audit, (entries) => entries.some((a) => a.action === 'brakeTripped'), 30_000);
      const trippedAt = Date.parse(tripped.find((a) => a.action === 'brakeTripped')!.at);
      const before = (await audit()).filter((a) => (a.action === 'delete' || a.action === 'drain') && ['terminated', 'unhealthy'].includes(a.reason) && Date.parse(a.at) <= trippedAt);
      expect(before.length).toBeLessThanOrEqual(1);
      // It holds: watch it for a while (agents are pinged every second; 3 s settle; 9 s window).
      const held = await healthDeletes();
      const group = await waitFor('the group says why', () => s!.api<{ blocked: Array<{ code: string; instanceIds?: string[] }> }>('GET', '/v1/groups/default/web'), (r) => r.body.blocked.some((b) => b.code === 'ShortCircuit'), 10_000);
      expect(group.body.blocked.find((b) => b.code === 'ShortCircuit')?.instanceIds?.length).toBeGreaterThanOrEqual(3);
      const explain = s.cli(['explain', 'default/web']);
      expect(explain.stdout).toMatch(/ShortCircuit/);
      // Absence can only be watched for: the unhealthy window (3 × the health threshold) and two
      // settle delays (3 health intervals each, the default healthSettle) beyond it.
      const settleMs = 3 * E2E_HEALTH_INTERVAL_MS;
      const windowMs = 3 * E2E_MISSED_HEALTH_THRESHOLD * E2E_HEALTH_INTERVAL_MS;
      await new Promise((resolve) => setTimeout(resolve, windowMs + 2 * settleMs));
      expect(await healthDeletes()).toEqual(held);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(-pid, 'SIGCONT');
        } catch {
          // gone (replaced before the brake tripped)
        }
      }
    }
    await waitFor('the brake releases', audit, (entries) => entries.some((a) => a.action === 'brakeReleased'), 45_000);
    await waitFor('the group at size, the frozen ones back in service', () => s!.group('default', 'web'), atSize(5), 45_000);
    // The timeline, for the record (relative to the SIGSTOPs).
    const timeline = (await audit())
      .filter((a) => Date.parse(a.at) >= t0 && ['brakeTripped', 'brakeReleased', 'delete', 'drain', 'create'].includes(a.action))
      .map((a) => `${((Date.parse(a.at) - t0) / 1000).toFixed(2)}s ${a.action}${a.instanceId ? ` ${a.instanceId}` : ''} (${a.reason})`);
    console.log(`[brake] 4 of 5 frozen within ${spreadMs} ms: ${timeline.join('; ')}`);
    const after = await s.instances();
    expect(frozen.filter((f) => after.some((i) => i.id === f.id && i.status === 'running')).length).toBeGreaterThanOrEqual(3);
  });
});
