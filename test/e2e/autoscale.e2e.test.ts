/**
 * End to end: target tracking on a real Prometheus. A gauge exporter on loopback, a real
 * Prometheus (Debian's `prometheus`) scraping it every second, and a real Drover server (HTTP,
 * SQLite, SimProvider) whose group autoscales on `sum(<gauge>)` with short interval and cooldowns:
 * raising the load scales up within the cooldown, lowering it scales down in steps of
 * maxStepDown, and killing Prometheus freezes the size and shows the AutoscaleBlocked block.
 */
import { afterEach, expect, it } from 'vitest';
import type { PlanView } from '../../src/server/views.js';
import { GaugeExporter, PrometheusServer } from '../helpers/prometheus-server.js';
import { TestServer } from '../helpers/server-harness.js';
import { runCli } from '../cli/run-cli.js';
import { describeWithTool, PROMETHEUS_TOOL } from '../helpers/tools.js';
import { waitFor } from './process-harness.js';

let exporter: GaugeExporter | undefined;
let prometheus: PrometheusServer | undefined;
let drover: TestServer | undefined;

afterEach(async () => {
  await drover?.close();
  await prometheus?.close();
  await exporter?.close();
  drover = prometheus = exporter = undefined;
});

const GAUGE = 'drover_e2e_load';
const QUERY = `sum(${GAUGE})`;

describeWithTool(PROMETHEUS_TOOL, 'autoscale on a real Prometheus', { timeout: 90_000 }, () => {
  it('scales up within the cooldown, down in steps of maxStepDown, and freezes the size with a block when Prometheus stops', async () => {
    exporter = await GaugeExporter.start(GAUGE);
    exporter.value = 5; // 1 instance
    prometheus = await PrometheusServer.start([exporter.target]);
    await waitFor('Prometheus has scraped the exporter', () => prometheus!.value(QUERY), (v) => v === 5, 20_000);

    drover = new TestServer({
      groups: {
        default: {
          web: {
            size: 1,
            min: 1,
            max: 10,
            template: 'web',
            drainTimeout: '0s',
            autoscale: { prometheus: prometheus.url, query: QUERY, targetPerInstance: 10, interval: '1s', queryTimeout: '2s', scaleUpCooldown: '3s', scaleDownCooldown: '2s', maxStepDown: 2 },
          },
        },
      },
    });
    await drover.start();
    const t = drover;
    const plan = async (): Promise<PlanView> => (await t.api<PlanView>('GET', '/v1/groups/default/web/plan')).body;
    const size = async (): Promise<number> => (await plan()).summary.size;
    await waitFor('autoscale evaluated', () => Promise.resolve(t.server.reconciler.sizeDecision('default', 'web')?.autoscale?.lastValue ?? null), (v) => v === 5, 10_000);
    expect(await size()).toBe(1);

    // Up: 75 -> ceil(75 / 10) = 8, at once (no scale-up within the cooldown before).
    const raised = Date.now();
    exporter.value = 75;
    await waitFor('scaled up to 8', size, (s) => s === 8, 15_000);
    const upMs = Date.now() - raised;
    expect(upMs).toBeLessThan(3_000 + 1_000 + 2_000 + 2_000); // cooldown + interval + scrape + slack
    // Up again at once: 95 -> 10, but not before scaleUpCooldown after the last scale-up.
    exporter.value = 95;
    await waitFor('scaled up to 10', size, (s) => s === 10, 15_000);

    // Down: 15 -> 2, in steps of 2, each at least scaleDownCooldown after the change before.
    const lowered = Date.now();
    exporter.value = 15;
    const seen: Array<{ size: number; at: number }> = [];
    await waitFor(
      'scaled down to 2',
      async () => {
        const s = await size();
        if (seen.at(-1)?.size !== s) seen.push({ size: s, at: Date.now() });
        return s;
      },
      (s) => s === 2,
      40_000,
      100,
    );
    const downMs = Date.now() - lowered;
    expect(seen.map((s) => s.size)).toEqual([10, 8, 6, 4, 2]);
    const scales = t.server.db.listAudit({ tenant: 'default', group: 'web' }).filter((a) => a.action === 'scale' && a.reason === 'autoscale');
    expect(scales.map((a) => a.detail?.split(':')[0])).toEqual(['size 1 -> 8', 'size 8 -> 10', 'size 10 -> 8', 'size 8 -> 6', 'size 6 -> 4', 'size 4 -> 2']);
    expect(scales.every((a) => a.actor === 'autoscale')).toBe(true);
    // The second scale-up waited scaleUpCooldown; each step down, scaleDownCooldown after the
    // change before it (the server's own times).
    const gaps = scales.slice(1).map((a, i) => a.at.getTime() - scales[i]!.at.getTime());
    expect(gaps[0]).toBeGreaterThanOrEqual(3_000);
    for (const gap of gaps.slice(1)) expect(gap).toBeGreaterThanOrEqual(2_000);

    // Prometheus stops: the size stays, the plan shows why, the audit says it once.
    const stopped = Date.now();
    await prometheus.kill();
    exporter.value = 1_000;
    const blocked = await waitFor('AutoscaleBlocked in the plan', plan, (p) => p.blocked.some((b) => b.code === 'AutoscaleBlocked'), 10_000);
    const blockMs = Date.now() - stopped;
    const block = blocked.blocked.find((b) => b.code === 'AutoscaleBlocked')!;
    expect(block.message).toMatch(new RegExp(`^autoscale keeps the size at 2: querying Prometheus ${prometheus.url.replace(/\./g, '\\.')}: .*ECONNREFUSED`));
    expect(blocked.summary.size).toBe(2);
    // Three more evaluations (one a second) while the load says 100: still frozen, audited once.
    const blockedAt = Date.parse(block.since!);
    await waitFor('three more evaluations', () => Promise.resolve(t.server.reconciler.sizeDecision('default', 'web')?.autoscale?.lastAt?.getTime() ?? 0), (at) => at >= blockedAt + 3_000, 10_000);
    expect(await size()).toBe(2);
    const audit = t.server.db.listAudit({ tenant: 'default', group: 'web' });
    expect(audit.filter((a) => a.action === 'autoscaleBlocked')).toHaveLength(1);
    // `drover explain` says what autoscale last decided, and why it is blocked.
    const explained = await runCli(['explain', 'default/web'], { DROVER_SERVER: t.url });
    expect(explained.status, explained.stderr).toBe(0);
    expect(explained.stdout).toMatch(/^size 2 set by autoscale: autoscale set 2 at /m);
    expect(explained.stdout).toMatch(/^autoscale, last evaluated \S+: size kept at 2: querying Prometheus .*ECONNREFUSED/m);
    expect(explained.stdout).toMatch(/^autoscale blocked since \S+: querying Prometheus /m);
    expect(explained.stdout).toMatch(/AutoscaleBlocked/);

    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain('drover_autoscale_blocked{tenant="default",group="web"} 1');
    expect(metrics).toMatch(/drover_autoscale_queries_total\{result="ok"\} \d+/);
    expect(metrics).toMatch(/drover_autoscale_queries_total\{result="error"\} \d+/);
    console.info(`autoscale e2e: up 1 -> 8 in ${upMs} ms, then 8 -> 10 after the cooldown ${gaps[0]} ms later, down 10 -> 2 in ${downMs} ms, blocked shown ${blockMs} ms after Prometheus stopped`);
  });
});
