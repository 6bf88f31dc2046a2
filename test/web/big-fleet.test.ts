/**
 * The dashboard with a big group: 10,000 healthy instances in one group (sim provider), in
 * headless Chromium. The instance table paints its first row, keeps only a bounded number of
 * rows in the DOM, and scrolls through all of them.
 *
 * Speed is a target, not something this test can hold a shared machine to: the first-row paint
 * (target 1 s from navigation start) and the scroll's frame times are printed, not asserted. What
 * is asserted is what a broken table would miss whatever the machine: the row count, a DOM that
 * stays small (virtualised) at the top and after scrolling, the rows at the scroll position, and
 * a first paint within ten times the target.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TestServer } from '../helpers/server-harness.js';
import { BrowserSession, describeWithChromium, findChromium, requireWebBuild } from './browser.js';

const CHROMIUM = findChromium();
const SIZE = 10_000;
/** The first-row paint the dashboard aims for (printed beside each measurement). */
const PAINT_TARGET_MS = 1_000;
/**
 * What the test holds it to: ten times the target. A table that renders every row, or waits on
 * a poll or a timer before painting, lands well past it; a busy machine does not.
 */
const PAINT_LIMIT_MS = 10 * PAINT_TARGET_MS;
/** Rows a virtualised table keeps in the DOM: a screenful and some overscan, not the group. */
const MAX_DOM_ROWS = 60;

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

  it('paints the first table row, keeps the DOM small, and scrolls through every row', async () => {
    const group = (await t!.api<{ inService: number; live: number }>('GET', '/v1/groups/default/big')).body;
    expect(group.inService).toBe(SIZE);
    const total = (await t!.api<unknown[]>('GET', '/v1/instances?tenant=default&group=big')).body.length;
    expect(total).toBeGreaterThanOrEqual(SIZE);

    // First paint: from navigation start to the frame that showed the first data row; three
    // loads, each a fresh page, and the best is the figure (a shared machine has noisy neighbours).
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { page, context } = await browser!.page();
      await page.goto(`${t!.url}/#/groups/default/big`);
      await page.locator('html[data-first-row-paint]').waitFor({ state: 'attached', timeout: PAINT_LIMIT_MS });
      runs.push(Number(await page.evaluate<string>('document.documentElement.dataset.firstRowPaint')));
      console.log(`[dashboard] load ${i + 1}: first row painted ${runs[i]} ms after navigation start (target ${PAINT_TARGET_MS} ms)`);
      expect(runs[i], 'first row paint (ms after navigation start)').toBeLessThan(PAINT_LIMIT_MS);
      if (i < 2) {
        await context.close();
        continue;
      }

      // Every instance is counted, few are in the DOM.
      const table = page.getByTestId('instances');
      expect(await table.locator('table').getAttribute('aria-rowcount')).toBe(String(total + 1));
      const domRows = async (): Promise<number> => table.locator('tbody tr[aria-rowindex]').count();
      expect(await domRows()).toBeLessThanOrEqual(MAX_DOM_ROWS);

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
      expect(await domRows()).toBeLessThanOrEqual(MAX_DOM_ROWS);
      // Rows shown after scrolling are the ones at the scroll position.
      const firstIndex = Number(await table.locator('tbody tr[aria-rowindex]').first().getAttribute('aria-rowindex'));
      expect(firstIndex).toBeGreaterThan(2000);
      await page.evaluate(`document.querySelector('[data-testid="instances"]').scrollTop = 1e9`);
      await table.locator(`tbody tr[aria-rowindex="${total + 1}"]`).waitFor();

      const sorted = [...frames].sort((a, b) => a - b);
      const p95 = sorted[Math.floor(sorted.length * 0.95)]!;
      const mean = frames.reduce((a, b) => a + b, 0) / frames.length;
      const best = Math.min(...runs);
      console.log(
        `[dashboard] ${SIZE} instances: first row painted at ${runs.map((r) => `${r} ms`).join(', ')} after navigation start (best ${best} ms, target ${PAINT_TARGET_MS} ms: ${best <= PAINT_TARGET_MS ? 'met' : 'MISSED'}); scrolling ${frames.length} frames: mean ${mean.toFixed(1)} ms, p95 ${p95.toFixed(1)} ms`,
      );
      await context.close();
    }
  });
});
