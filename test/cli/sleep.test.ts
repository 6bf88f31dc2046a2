/**
 * `drover sleep`, `wake`, `tenants`, and what sets the size in `status` and `explain`: the built
 * CLI against a real server.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { untilTime } from '../../src/cli/commands/sleep.js';
import { requireBuild } from '../e2e/process-harness.js';
import { TestServer } from '../helpers/server-harness.js';
import { runCli } from './run-cli.js';

let t: TestServer | undefined;
beforeAll(() => requireBuild());
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };
const GROUPS = {
  a: { web: { size: 2, template: 'web', schedules: [{ cron: '0 0 1 1 *', size: 3, name: 'new year' }] }, worker: { size: 1, template: 'worker' } },
  b: { web: { size: 1, template: 'web' } },
};

describe('drover sleep and wake', { timeout: 60_000 }, () => {
  it('reads --until as an ISO-8601 time or a duration from now, and nothing else', () => {
    const now = Date.parse('2026-01-05T10:00:00Z');
    expect(untilTime('8h', now)).toBe('2026-01-05T18:00:00.000Z');
    expect(untilTime('1h30m', now)).toBe('2026-01-05T11:30:00.000Z');
    expect(untilTime('2026-01-06T07:00:00+01:00', now)).toBe('2026-01-06T06:00:00.000Z');
    expect(() => untilTime('tomorrow', now)).toThrow(/--until: expected an ISO-8601 time/);
    expect(() => untilTime('2026-01-06', now)).toThrow(/--until/);
    expect(() => untilTime('0s', now)).toThrow(/--until/);
  });

  it('puts a tenant to sleep and wakes it, and status and explain say what sets the size', async () => {
    t = await new TestServer({ groups: GROUPS, shard: QUIET }).start();
    await t.settle();
    const env = { DROVER_SERVER: t.url };

    const before = await runCli(['status'], env);
    expect(before.status, before.stderr).toBe(0);
    expect(before.stdout).toMatch(/^GROUP\s+SIZE\s+SET-BY\s+IN-SERVICE/);
    // The configured size counts from the server's start; the schedule sets 3 when it next fires.
    expect(before.stdout).toMatch(/a\/web\s+2\s+config\s/);
    expect(before.stdout).toMatch(/a\/worker\s+1\s+config\s/);
    expect(before.stdout).toContain('size set by:\n');
    expect(before.stdout).toMatch(/ {2}a\/web: the configured size 2 \(in force since [^)]+\); next schedule "new year" sets 3 at \d{4}-01-01T00:00:00.000Z\n/);

    const slept = await runCli(['sleep', 'a', '--until', '8h', '-o', 'json'], env);
    expect(slept.status, slept.stderr).toBe(0);
    const view = JSON.parse(slept.stdout) as { asleep: boolean; groups: string[]; sleep: { until: string } };
    expect(view).toMatchObject({ asleep: true, groups: ['web', 'worker'] });
    expect(Math.abs(Date.parse(view.sleep.until) - (Date.now() + 8 * 3_600_000))).toBeLessThan(60_000);
    await t.settle();

    const asleep = await runCli(['status'], env);
    expect(asleep.stdout).toMatch(/a\/web\s+0\s+asleep\s/);
    expect(asleep.stdout).toMatch(/b\/web\s+1\s+config\s/);
    const explained = await runCli(['explain', 'a/web'], env);
    expect(explained.status, explained.stderr).toBe(0);
    expect(explained.stdout).toMatch(/^size 0 set by asleep: tenant a is asleep \(since .*, by operator:api\) until .*: size 0; awake it would be 2: the configured size 2/m);
    const listed = await runCli(['tenants'], env);
    expect(listed.stdout).toMatch(/a\s+web,worker\s+asleep\s+\d{4}-/);
    expect(listed.stdout).toMatch(/b\s+web\s+awake/);

    const woken = await runCli(['wake', 'a'], env);
    expect(woken.status, woken.stderr).toBe(0);
    expect(woken.stdout).toBe('a woken: web, worker go back to their sizes\n');
    expect((await runCli(['wake', 'a'], env)).stdout).toBe('a was not asleep: nothing to do\n');
    expect(t.server.db.listAudit({ tenant: 'a' }).filter((e) => e.action === 'sleep' || e.action === 'wake')).toHaveLength(4);
  });

  it('exits 1 with the server\'s reason for a tenant it refuses, and 2 for a bad command line', async () => {
    t = await new TestServer({ groups: GROUPS, shard: QUIET }).start();
    const env = { DROVER_SERVER: t.url };
    const unknown = await runCli(['sleep', 'nobody'], env);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('putting a tenant to sleep: tenant nobody has no configured groups (HTTP 404)');
    const past = await runCli(['sleep', 'a', '--until', '2020-01-01T00:00:00Z'], env);
    expect(past.status).toBe(1);
    expect(past.stderr).toMatch(/putting tenant a to sleep: until 2020-01-01T00:00:00.000Z is not in the future/);
    const bad = await runCli(['sleep', 'a', '--until', 'tomorrow'], env);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--until: expected an ISO-8601 time/);
    expect((await runCli(['wake'], env)).status).toBe(2);
    expect(t.server.reconciler.tenantSleep('a')).toBeNull();
  });
});
