import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { SystemClock } from '../../../src/clock/index.js';
import { InstanceNotFoundError, InvalidRequestError, PermanentError } from '../../../src/errors/index.js';
import { localInstancePaths, readNotice, writeNotice, type LocalProvider, type LocalProviderOptions } from '../../../src/providers/local/index.js';
import { processHasEnv, processesWithEnv, readProcStat } from '../../../src/providers/local/proc.js';
import type { ProviderCreateRequest } from '../../../src/providers/index.js';
import { useLocalProviderFixture } from './fake-agent.js';

const clock = new SystemClock();
const fx = useLocalProviderFixture('drover-local-');
const provider = (options: Partial<LocalProviderOptions> = {}): LocalProvider => fx.provider(options);
let seq = 0;

function request(tags: Record<string, string> = {}, template: Record<string, unknown> = {}): ProviderCreateRequest {
  const id = `i-test${process.pid}-${++seq}`;
  fx.track(id);
  return {
    idempotencyKey: id,
    tags: { 'drover:instance-id': id, ...tags },
    template,
    userData: { DROVER_SERVER: 'http://127.0.0.1:7001, http://127.0.0.1:7002', DROVER_AGENT_CREDENTIAL: 'secret-credential' },
  };
}

/** Waits until the fake agent of `id` has finished starting. */
async function ready(id: string): Promise<void> {
  const dir = localInstancePaths(fx.stateDir, id).dir;
  await vi.waitFor(() => expect(existsSync(join(dir, 'ready'))).toBe(true), { timeout: 10_000, interval: 10 });
}

function metaOf(id: string): { pid?: number; pgid?: number; startTime?: string; tags: Record<string, string> } {
  return JSON.parse(readFileSync(localInstancePaths(fx.stateDir, id).meta, 'utf8')) as { pid?: number; pgid?: number; startTime?: string; tags: Record<string, string> };
}

function childPid(id: string): number {
  return Number(readFileSync(join(localInstancePaths(fx.stateDir, id).dir, 'child.pid'), 'utf8'));
}

function alive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== null && stat.state !== 'Z';
}

/** Leaders (pid = process group) among the processes carrying the instance id. */
function leaders(id: string): number[] {
  return processesWithEnv('DROVER_INSTANCE_ID', id)
    .filter((p) => p.pid === p.pgrp)
    .map((p) => p.pid);
}

describe('LocalProvider', () => {
  it('create starts a detached agent carrying DROVER_INSTANCE_ID, with its config, and is idempotent', async () => {
    const p = provider();
    const req = request({ 'drover:group': 'web' }, { command: ['sleep', '1000'], healthCommand: ['true'], drainCommand: ['true'], healthCheckIntervalMs: 5_000 });
    const id = req.idempotencyKey;
    process.env.DROVER_AGENT_SECRET = 'server-secret';
    process.env.DROVER_TEST_MARKER = 'inherited';
    let created;
    try {
      created = await p.create(req);
    } finally {
      delete process.env.DROVER_AGENT_SECRET;
      delete process.env.DROVER_TEST_MARKER;
    }
    expect(created).toEqual({ providerId: id, status: 'running', tags: req.tags });
    await ready(id);

    const paths = localInstancePaths(fx.stateDir, id);
    const meta = metaOf(id);
    const stat = readProcStat(meta.pid!)!;
    expect(stat.startTime).toBe(meta.startTime);
    expect(stat.pgrp).toBe(meta.pid); // its own process group
    expect(meta.pgid).toBe(meta.pid);
    expect(stat.pgrp).not.toBe(readProcStat(process.pid)!.pgrp);
    const env = JSON.parse(readFileSync(join(paths.dir, 'env.json'), 'utf8')) as { DROVER_INSTANCE_ID: string; pid: number };
    expect(env).toEqual({ DROVER_INSTANCE_ID: id, pid: meta.pid });
    // Neither the server's secrets nor the rest of its environment reach it (the allow-list: see below).
    expect(processHasEnv(meta.pid!, 'DROVER_TEST_MARKER', 'inherited')).toBe(false);
    expect(processHasEnv(meta.pid!, 'DROVER_AGENT_SECRET', 'server-secret')).toBe(false);
    expect(readFileSync(paths.pidFile, 'utf8').trim()).toBe(String(meta.pid));
    expect(readFileSync(paths.log, 'utf8')).toContain('fake agent started');

    const agentConfig: unknown = JSON.parse(readFileSync(paths.agentConfig, 'utf8'));
    expect(agentConfig).toEqual({
      instanceId: id,
      servers: ['http://127.0.0.1:7001', 'http://127.0.0.1:7002'],
      credential: 'secret-credential',
      command: ['sleep', '1000'],
      drainCommand: ['true'],
      healthCommand: ['true'],
      noticeFile: paths.notice,
      pidFile: paths.pidFile,
      selfSocket: join(paths.dir, 'agent.sock'),
      healthCheckIntervalMs: 5_000,
    });
    expect(statSync(paths.agentConfig).mode & 0o777).toBe(0o600);
    expect(readFileSync(paths.meta, 'utf8')).not.toContain('secret-credential');

    const again = await p.create(req);
    expect(again).toEqual(created);
    expect(metaOf(id).pid).toBe(meta.pid);
    expect(leaders(id)).toEqual([meta.pid]);
    // A second provider over the same folder (a restarted server) does not start another either.
    const again2 = await provider().create(req);
    expect(again2.status).toBe('running');
    expect(leaders(id)).toEqual([meta.pid]);
  });

  it('reports stopped while SIGSTOPped and running after SIGCONT', async () => {
    const p = provider();
    const { providerId } = await p.create(request());
    await ready(providerId);
    expect(await p.status(providerId)).toBe('running');
    const pid = metaOf(providerId).pid!;
    process.kill(-pid, 'SIGSTOP');
    await vi.waitFor(async () => expect(await p.status(providerId)).toBe('stopped'), { interval: 10 });
    process.kill(-pid, 'SIGCONT');
    await vi.waitFor(async () => expect(await p.status(providerId)).toBe('running'), { interval: 10 });
  });

  it('delete terminates the whole process group, removes the folder, and the instance is then not found', async () => {
    const p = provider();
    const { providerId } = await p.create(request());
    await ready(providerId);
    const pid = metaOf(providerId).pid!;
    const child = childPid(providerId);
    expect(alive(child)).toBe(true);
    expect(readProcStat(child)!.pgrp).toBe(pid);

    await p.delete(providerId);
    expect(alive(pid)).toBe(false);
    expect(alive(child)).toBe(false);
    expect(existsSync(localInstancePaths(fx.stateDir, providerId).dir)).toBe(false);
    await expect(p.status(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    await expect(p.delete(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    await expect(p.setTags(providerId, { a: 'b' })).rejects.toBeInstanceOf(InstanceNotFoundError);
  });

  it('delete kills with SIGKILL an instance that ignores SIGTERM, after the grace period', async () => {
    const p = provider({ killGracePeriodMs: 300 });
    const { providerId } = await p.create(request({}, { command: ['ignore-sigterm'] }));
    await ready(providerId);
    const pid = metaOf(providerId).pid!;
    const started = clock.nowMs();
    await p.delete(providerId);
    expect(clock.nowMs() - started).toBeGreaterThanOrEqual(300);
    expect(alive(pid)).toBe(false);
  });

  it('delete continues a stopped instance so that it handles SIGTERM at once', async () => {
    const graceMs = 20_000;
    const p = provider({ killGracePeriodMs: graceMs });
    const { providerId } = await p.create(request());
    await ready(providerId);
    const pid = metaOf(providerId).pid!;
    process.kill(-pid, 'SIGSTOP');
    await vi.waitFor(async () => expect(await p.status(providerId)).toBe('stopped'), { interval: 10 });
    const started = clock.nowMs();
    await p.delete(providerId);
    // A stopped process does not act on SIGTERM: left stopped, it would go only at the SIGKILL
    // after the grace. Gone before the grace ran out, SIGTERM worked.
    expect(clock.nowMs() - started).toBeLessThan(graceMs);
    expect(alive(pid)).toBe(false);
  });

  it('an instance whose process was killed is not found; delete then kills what is left and removes the folder', async () => {
    const p = provider();
    const { providerId } = await p.create(request({ role: 'x' }));
    await ready(providerId);
    const pid = metaOf(providerId).pid!;
    const child = childPid(providerId);
    process.kill(pid, 'SIGKILL');
    await vi.waitFor(() => expect(alive(pid)).toBe(false), { interval: 10 });

    await expect(p.status(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    expect(await p.list({ role: 'x' })).toEqual([]);
    // The folder (and log) stays for a while; the orphaned child still runs in the group.
    expect(existsSync(localInstancePaths(fx.stateDir, providerId).log)).toBe(true);
    expect(alive(child)).toBe(true);

    await expect(p.delete(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    expect(alive(child)).toBe(false);
    expect(existsSync(localInstancePaths(fx.stateDir, providerId).dir)).toBe(false);
  });

  it('create with the key of an instance that was started and died returns it as terminated', async () => {
    const p = provider();
    const req = request();
    await p.create(req);
    await ready(req.idempotencyKey);
    const pid = metaOf(req.idempotencyKey).pid!;
    process.kill(-pid, 'SIGKILL');
    await vi.waitFor(() => expect(alive(pid)).toBe(false), { interval: 10 });
    expect((await p.create(req)).status).toBe('terminated');
    expect(leaders(req.idempotencyKey)).toEqual([]);
  });

  it('a pid reused by another process does not count as the instance', async () => {
    const p = provider();
    const { providerId } = await p.create(request());
    await ready(providerId);
    // Pretend the recorded process started at another time: the pid now names someone else.
    const paths = localInstancePaths(fx.stateDir, providerId);
    const meta = metaOf(providerId);
    writeFileSync(paths.meta, JSON.stringify({ ...meta, startTime: '1' }));
    await expect(p.status(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    expect(await p.list({})).toEqual([]);
  });

  it('list filters by tags; a new provider over the same state adopts the instances; setTags persists', async () => {
    const p = provider();
    const a = await p.create(request({ 'drover:shard': 's1', 'drover:group': 'web' }));
    const b = await p.create(request({ 'drover:shard': 's1', 'drover:group': 'db' }));
    const c = await p.create(request({ 'drover:shard': 's2', 'drover:group': 'web' }));
    await Promise.all([a, b, c].map((i) => ready(i.providerId)));

    const ofShard1 = await p.list({ 'drover:shard': 's1' });
    expect(ofShard1.map((i) => i.providerId).sort()).toEqual([a.providerId, b.providerId].sort());
    expect(ofShard1.every((i) => i.status === 'running')).toBe(true);
    expect((await p.list({ 'drover:shard': 's1', 'drover:group': 'web' })).map((i) => i.providerId)).toEqual([a.providerId]);
    expect(await p.list({ 'drover:shard': 's3' })).toEqual([]);
    expect((await p.list({})).length).toBe(3);

    await p.setTags(a.providerId, { 'drover:drain-reason': 'expiry', 'drover:group': 'web' });
    await p.close();

    const restarted = provider();
    const seen = await restarted.list({ 'drover:shard': 's1', 'drover:drain-reason': 'expiry' });
    expect(seen).toEqual([{ providerId: a.providerId, status: 'running', tags: { ...a.tags, 'drover:drain-reason': 'expiry' } }]);
    expect(await restarted.status(b.providerId)).toBe('running');
    await restarted.delete(c.providerId);
    expect((await restarted.list({})).map((i) => i.providerId).sort()).toEqual([a.providerId, b.providerId].sort());
  });

  it('finds an instance whose pid was never recorded (server died between spawn and meta), through its pid file or its environment', async () => {
    const p = provider();
    const req = request({ k: 'v' });
    const id = req.idempotencyKey;
    await p.create(req);
    await ready(id);
    const paths = localInstancePaths(fx.stateDir, id);
    const { pid, pgid: _pgid, startTime: _startTime, ...unrecorded } = metaOf(id) as { pid: number; pgid: number; startTime: string; tags: Record<string, string> };

    // Through the agent's pid file.
    writeFileSync(paths.meta, JSON.stringify(unrecorded));
    const restarted = provider();
    expect(await restarted.status(id)).toBe('running');
    expect(metaOf(id).pid).toBe(pid); // adopted and recorded

    // Through the environment alone (no pid file yet).
    writeFileSync(paths.meta, JSON.stringify(unrecorded));
    rmSync(paths.pidFile);
    const again = provider();
    expect((await again.list({ k: 'v' })).map((i) => i.providerId)).toEqual([id]);
    writeFileSync(paths.meta, JSON.stringify(unrecorded));
    expect((await again.create(req)).status).toBe('running');
    expect(leaders(id)).toEqual([pid]); // not started twice
    await again.delete(id);
    expect(alive(pid)).toBe(false);
  });

  it('starts an instance whose folder exists but which was never started', async () => {
    const broken = provider({ agentCommand: [join(fx.root, 'no-such-agent')] });
    const req = request();
    const err: unknown = await broken.create(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(existsSync(localInstancePaths(fx.stateDir, req.idempotencyKey).meta)).toBe(true);

    const p = provider();
    expect((await p.create(req)).status).toBe('running');
    await ready(req.idempotencyKey);
    expect(await p.status(req.idempotencyKey)).toBe('running');
    expect(leaders(req.idempotencyKey)).toHaveLength(1);
  });

  it('deletes an instance once its termination notice time has passed', async () => {
    const p = provider({ noticeSweepMs: 20 });
    p.start();
    const { providerId } = await p.create(request());
    await ready(providerId);
    const pid = metaOf(providerId).pid!;
    const terminateAt = new Date(clock.nowMs() + 200);
    writeNotice(fx.stateDir, providerId, terminateAt);
    expect(readNotice(fx.stateDir, providerId)).toEqual(terminateAt);
    expect(JSON.parse(readFileSync(localInstancePaths(fx.stateDir, providerId).notice, 'utf8'))).toEqual({ terminateAt: terminateAt.toISOString() });

    await vi.waitFor(() => expect(alive(pid)).toBe(false), { timeout: 10_000, interval: 10 });
    expect(clock.nowMs()).toBeGreaterThanOrEqual(terminateAt.getTime());
    await vi.waitFor(() => expect(existsSync(localInstancePaths(fx.stateDir, providerId).dir)).toBe(false), { interval: 10 });
    await expect(p.status(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    expect(() => writeNotice(fx.stateDir, providerId, terminateAt)).toThrow(InstanceNotFoundError);
  });

  it('removes the folders of dead instances only after the retention time', async () => {
    const p = provider();
    const { providerId } = await p.create(request());
    await ready(providerId);
    process.kill(-metaOf(providerId).pid!, 'SIGKILL');
    await vi.waitFor(async () => expect(await p.list({})).toEqual([]), { interval: 10 });
    await p.sweep();
    expect(existsSync(localInstancePaths(fx.stateDir, providerId).log)).toBe(true); // kept for its log
    const impatient = provider({ deadRetentionMs: 0 });
    await impatient.sweep();
    expect(existsSync(localInstancePaths(fx.stateDir, providerId).dir)).toBe(false);
  });

  it('refuses bad requests without creating anything', async () => {
    const p = provider();
    const noServer = { ...request(), userData: { DROVER_AGENT_CREDENTIAL: 'c' } };
    await expect(p.create(noServer)).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(p.create({ ...request(), template: { command: 'not-an-array' } })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(p.create({ ...request(), idempotencyKey: '../escape' })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(p.status('../escape')).rejects.toBeInstanceOf(InstanceNotFoundError);
    await expect(p.status('i-never-created')).rejects.toBeInstanceOf(InstanceNotFoundError);
    await expect(p.delete('i-never-created')).rejects.toBeInstanceOf(InstanceNotFoundError);
    expect(await p.list({})).toEqual([]);
  });
});
