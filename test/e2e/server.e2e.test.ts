/**
 * End to end: a real `drover server` with the local provider; instances are real processes
 * running `drover agent`. These tests take seconds each (real health intervals of 1 s).
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ProcessServer, requireBuild, waitFor, type InstanceRow } from './process-harness.js';
import { EventStreamReader } from '../helpers/event-stream.js';

let s: ProcessServer | undefined;
beforeAll(() => requireBuild());
afterEach(async () => {
  await s?.cleanup();
  s = undefined;
});

const atSize = (size: number) => (g: { size: number; inService: number; pending: number; live: number; draining: number } | undefined) =>
  g !== undefined && g.size === size && g.inService === size && g.pending === 0 && g.live - g.draining === size;

async function startWeb(size: number, extra: Parameters<ProcessServer['writeConfig']>[1] = {}, web: Record<string, unknown> = {}): Promise<ProcessServer> {
  const server = new ProcessServer();
  await server.writeConfig({ default: { web: { size, template: 'web', drainTimeout: '10s', ...web } } }, extra);
  await server.start();
  await waitFor('group at size', () => server.group('default', 'web'), atSize(size), 45_000);
  return server;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('drover server with the local provider', { timeout: 120_000 }, () => {
  it('brings groups to size with agents connected and healthy; every process carries its instance id', async () => {
    s = new ProcessServer();
    await s.writeConfig({ default: { web: { size: 3, template: 'web' }, worker: { size: 2, template: 'web' } } });
    await s.start();
    await waitFor('web at size', () => s!.group('default', 'web'), atSize(3), 45_000);
    await waitFor('worker at size', () => s!.group('default', 'worker'), atSize(2), 45_000);
    const instances = [...(await s.instances('default', 'web')), ...(await s.instances('default', 'worker'))];
    expect(instances.every((i) => i.connected && i.healthAt !== null)).toBe(true);
    const procs = s.instanceProcesses();
    for (const i of instances) expect(procs.get(i.id)?.length ?? 0, `processes of ${i.id} (agent + workload)`).toBeGreaterThanOrEqual(2);
  });

  it('replaces an instance killed with kill -9', async () => {
    s = await startWeb(2);
    const [victim] = await s.instances();
    const pid = s.pidOf(victim!.id)!;
    process.kill(-pid, 'SIGKILL');
    await waitFor('victim deleted', async () => (await s!.api<InstanceRow>('GET', `/v1/instances/${victim!.id}`)).body.status, (st) => st === 'deleted', 30_000);
    await waitFor('group back at size', () => s!.group('default', 'web'), atSize(2), 45_000);
  });

  it('replaces an instance that is stopped (SIGSTOP)', async () => {
    s = await startWeb(2);
    const [victim] = await s.instances();
    const pid = s.pidOf(victim!.id)!;
    process.kill(-pid, 'SIGSTOP');
    await waitFor('victim deleted', async () => (await s!.api<InstanceRow>('GET', `/v1/instances/${victim!.id}`)).body.status, (st) => st === 'deleted', 45_000);
    expect(alive(pid)).toBe(false);
    await waitFor('group back at size', () => s!.group('default', 'web'), atSize(2), 45_000);
  });

  it('drains and replaces an instance whose agent stays up but stops reporting health', async () => {
    const flag = `/tmp/drover-e2e-sick-${process.pid}-${Date.now()}`;
    s = await startWeb(2, { templates: { web: { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], healthCommand: ['sh', '-c', `test ! -f ${flag}-$DROVER_INSTANCE_ID`] } } });
    const [victim] = await s.instances();
    const { writeFileSync, rmSync } = await import('node:fs');
    writeFileSync(`${flag}-${victim!.id}`, 'sick');
    try {
      const drained = await waitFor('victim drained', async () => (await s!.api<InstanceRow>('GET', `/v1/instances/${victim!.id}`)).body, (i) => i.status === 'draining' || i.status === 'deleted', 30_000);
      expect(drained.drainReason).toBe('unhealthy');
      expect((await s.instances()).find((i) => i.id === victim!.id)?.connected ?? true).toBe(true);
      await waitFor('replacement in service', () => s!.group('default', 'web'), (g) => g !== undefined && g.inService === 2, 45_000);
      expect((await s.instances()).some((i) => i.replaces === victim!.id)).toBe(true);
    } finally {
      rmSync(`${flag}-${victim!.id}`, { force: true });
    }
  });

  it('drains scale-down victims with notices on /v1/events, deleting them on ack or at the deadline', async () => {
    s = await startWeb(3, {}, { drainTimeout: '4s' });
    const events = await EventStreamReader.open(`${s.url}/v1/events`);
    const drains = (): Array<{ instanceId: string; reason: string }> => events.ofType('drain');
    const scaled = s.cli(['scale', 'default/web', '1']);
    expect(scaled.status, scaled.stderr).toBe(0);
    await waitFor('two drain notices', () => drains().length, (n) => n >= 2, 15_000);
    expect(drains().map((d) => d.reason)).toEqual(['scaleDown', 'scaleDown']);
    // One acknowledged by the operator now; the other runs to its 4 s deadline.
    const ack = s.cli(['drain', 'ack', drains()[0]!.instanceId]);
    expect(ack.status, ack.stderr).toBe(0);
    await waitFor('acked one deleted', async () => (await s!.api<InstanceRow>('GET', `/v1/instances/${drains()[0]!.instanceId}`)).body.status, (st) => st === 'deleted', 10_000);
    expect((await s.api<InstanceRow>('GET', `/v1/instances/${drains()[1]!.instanceId}`)).body.status).toBe('draining');
    await waitFor('other deleted at its deadline', async () => (await s!.api<InstanceRow>('GET', `/v1/instances/${drains()[1]!.instanceId}`)).body.status, (st) => st === 'deleted', 15_000);
    await events.close();
    await waitFor('group at 1', () => s!.group('default', 'web'), atSize(1), 15_000);
  });

  it('starts a replacement on a termination notice, in service before the notice\'s time, and drains the old instance', async () => {
    const NOTICE_MS = 20_000;
    s = await startWeb(2, {}, { drainTimeout: '1m' });
    const [doomed] = await s.instances();
    const notice = s.cli(['local', 'notice', doomed!.id, '--in', `${NOTICE_MS / 1_000}s`, '--state-dir', s.stateDir]);
    expect(notice.status, notice.stderr).toBe(0);
    // No later than this the provider takes the instance away (the notice counts from the command).
    const terminateBy = Date.now() + NOTICE_MS;
    const replacement = await waitFor('replacement recorded', async () => (await s!.instances()).find((i) => i.replaces === doomed!.id), (r) => r !== undefined, 10_000);
    const audit = (await s.api<Array<{ instanceId: string; action: string; event: string | null; at: string }>>('GET', `/v1/audit?group=default/web`)).body;
    const noticed = audit.find((a) => a.instanceId === doomed!.id && a.action === 'notice')!;
    const created = audit.find((a) => a.instanceId === replacement!.id && a.action === 'create')!;
    // The notice itself led to the create: it did not wait for a later pass over the group
    // (a health judgment, the instance gone at the provider, a periodic resync).
    expect(created.event).toMatch(/^TerminationNotice\b/);
    console.log(`[notice] replacement created ${Date.parse(created.at) - Date.parse(noticed.at)} ms after the notice was recorded`);
    const old = (await s.api<InstanceRow>('GET', `/v1/instances/${doomed!.id}`)).body;
    expect(old.status).toBe('draining');
    expect(old.drainReason).toBe('terminationNotice');
    // The point of starting it at once: the group keeps its capacity through the termination.
    await waitFor('the replacement in service before the notice\'s time', () => s!.group('default', 'web'), (g) => g !== undefined && g.inService === 2, Math.max(0, terminateBy - Date.now()));
    expect((await s.api<InstanceRow>('GET', `/v1/instances/${replacement!.id}`)).body.healthAt).not.toBeNull();
  });

  it('follows edits of the config file, and keeps the previous config when the file is invalid', async () => {
    s = await startWeb(1);
    await s.writeConfig({ default: { web: { size: 3, template: 'web', drainTimeout: '10s' } } });
    await waitFor('group at 3', () => s!.group('default', 'web'), atSize(3), 45_000);
    s.writeRaw(stringify({ ...JSON.parse(JSON.stringify({})), server: { listen: `127.0.0.1:${s.port}` }, groups: { default: { web: { size: 'many', template: 'web' } } } }));
    const health = await waitFor('config error reported', async () => (await s!.api<{ configError: string | null }>('GET', '/healthz')).body, (h) => h.configError !== null, 10_000);
    expect(health.configError).toMatch(/groups\.default\.web\.size: must be a whole number/);
    expect(s.output).toMatch(/config rejected; previous config stays in force/);
    expect((await s.group('default', 'web'))?.size).toBe(3);
  });

  it('survives kill -9 of the server mid scale-up: running instances are adopted, nothing leaks, no duplicates', async () => {
    s = await startWeb(1, { shard: { createRateLimit: '300ms' } });
    const before = await s.instances();
    const scaled = s.cli(['scale', 'default/web', '6']);
    expect(scaled.status, scaled.stderr).toBe(0);
    await waitFor('scale-up under way', async () => (await s!.instances()).length, (n) => n >= 3, 15_000);
    await s.kill9();
    await s.start();
    await waitFor('group at 6', () => s!.group('default', 'web'), atSize(6), 60_000);
    const after = await s.instances();
    expect(after).toHaveLength(6);
    for (const i of before) expect(after.map((a) => a.id)).toContain(i.id);
    // Every instance process belongs to a live instance; no extra process exists.
    const procs = s.instanceProcesses();
    expect([...procs.keys()].sort()).toEqual(after.map((i) => i.id).sort());
    const adopted = (await s.api<Array<{ action: string; reason: string }>>('GET', '/v1/audit?group=default/web&limit=1000')).body;
    expect(adopted.filter((a) => a.action === 'create').length).toBeLessThanOrEqual(6 + 1);
  });
});
