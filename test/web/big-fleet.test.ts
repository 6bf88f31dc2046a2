/**
 * The dashboard with a big group: 10,000 healthy instances in one group (sim provider). The
 * instance table must paint its first row within 1 s of navigation start in headless Chromium,
 * keep only a bounded number of rows in the DOM, and scroll without long frames.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestServer } from '../helpers/server-harness.js';
import { BrowserSession, describeWithChromium, findChromium, requireWebBuild } from './browser.js';

const CHROMIUM = findChromium();
const SIZE = 10_000;

let browser: BrowserSession | undefined;
let t: TestServer | undefined;

describeWithChromium('web dashboard with 10,000 instances in one group', { timeout: 90_000 }, () => {
  beforeAll(async () => {
    requireWebBuild();
    // Health reports stay valid for the whole test: no instance is judged silent and replaced.
    t = await new TestServer({ shard: { healthCheckInterval: '1h' }, groups: { default: { big: { size: SIZE, template: 'web', maxSurge: 1 } } } }).start();
    await t.settle();
    const db = t.server.db;
    db.recordHealthBatch(db.listInstances().map((i) => ({ instanceId: i.id, at: new Date() })));
    await t.settle();
    browser = await BrowserSession.launch(CHROMIUM!);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('paints the first table row in under 1 s, keeps the DOM small, and scrolls smoothly', async () => {
    const group = (await t!.api<{ inService: number; live: number }>('GET', '/v1/groups/default/big')).body;
    expect(group.inService).toBe(SIZE);
    const total = (await t!.api<unknown[]>('GET', '/v1/instances?tenant=default&group=big')).body.length;
    expect(total).toBeGreaterThanOrEqual(SIZE);

    // First paint: from navigation start to the frame that showed the first data row. The best
    // of three loads (a shared CI machine has noisy neighbours); each is a fresh page.
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { page, context } = await browser!.page();
      await page.goto(`${t!.url}/#/groups/default/big`);
      await page.locator('html[data-first-row-paint]').waitFor({ state: 'attached', timeout: 20_000 });
      runs.push(Number(await page.evaluate<string>('document.documentElement.dataset.firstRowPaint')));
      console.log(`[dashboard] load ${i + 1}: first row painted ${runs[i]} ms after navigation start`);
      if (i < 2) {
        await context.close();
        continue;
      }

      // Every instance is counted, few are in the DOM.
      const table = page.getByTestId('instances');
      expect(await table.locator('table').getAttribute('aria-rowcount')).toBe(String(total + 1));
      const domRows = async (): Promise<number> => table.locator('tbody tr[aria-rowindex]').count();
      expect(await domRows()).toBeLessThanOrEqual(60);

      // Scroll through the table a frame at a time; record frame durations.
      const frames = await page.evaluate<number[]>(`new Promise((resolve) => {
        const el = document.querySelector('[data-testid="instances"]');
        const times = [];
        let last = performance.now();
        let step = 0;
        const tick = (now) => {
          times.push(now - last);
          last = now;
          el.scrollTop += 900;
          if (++step < 120) requestAnimationFrame(tick); else resolve(times.slice(1));
        };
        requestAnimationFrame(tick);
      })`);
      expect(await domRows()).toBeLessThanOrEqual(60);
      // Rows shown after scrolling are the ones at the scroll position.
      const firstIndex = Number(await table.locator('tbody tr[aria-rowindex]').first().getAttribute('aria-rowindex'));
      expect(firstIndex).toBeGreaterThan(2000);
      await page.evaluate(`document.querySelector('[data-testid="instances"]').scrollTop = 1e9`);
      await table.locator(`tbody tr[aria-rowindex="${total + 1}"]`).waitFor();

      const sorted = [...frames].sort((a, b) => a - b);
      const p95 = sorted[Math.floor(sorted.length * 0.95)]!;
      const mean = frames.reduce((a, b) => a + b, 0) / frames.length;
      console.log(`[dashboard] ${SIZE} instances: first row painted at ${runs.map((r) => `${r} ms`).join(', ')} after navigation start (best ${Math.min(...runs)} ms); scrolling ${frames.length} frames: mean ${mean.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`);
      expect(p95).toBeLessThan(100);
      await context.close();
    }
    expect(Math.min(...runs)).toBeLessThan(1000);
  });
});
