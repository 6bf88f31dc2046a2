/**
 * `npm run screenshots`: PNGs of every dashboard view, from a real `drover server` with the local
 * provider (instances are real processes on this machine), written to docs/screenshots/.
 *
 * It starts a server in a temp folder with a token, waits for its groups to be in service,
 * scales two groups down so drains wait for their acknowledgement, protects an instance, and
 * photographs: sign-in, fleet, group, scale dialog with its dry-run plan, instance history,
 * dark theme and phone width. Everything it started is stopped at the end.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { BrowserSession, findChromium, requireWebBuild, signIn } from '../test/web/browser.js';
import { ProcessServer, requireBuild, waitFor } from '../test/e2e/process-harness.js';

const OUT = resolve('docs/screenshots');
const TOKEN = 'screenshots-token';

interface GroupRow {
  group: string;
  size: number;
  inService: number;
  pending: number;
  draining: number;
}

interface InstanceRow {
  id: string;
  status: string;
}

async function main(): Promise<void> {
  requireBuild();
  requireWebBuild();
  const chromium = findChromium();
  if (!chromium) throw new Error('chromium not found (apt-get install chromium, or set CHROMIUM_PATH)');
  mkdirSync(OUT, { recursive: true });

  const server = new ProcessServer();
  let browser: BrowserSession | undefined;
  try {
    const workload = ['node', '-e', 'setInterval(() => {}, 1 << 30)'];
    await server.writeConfig(
      {
        default: { web: { size: 4, template: 'web', drainTimeout: '15m' }, worker: { size: 2, template: 'worker' } },
        payments: { api: { size: 3, template: 'web', drainTimeout: '55s' } },
      },
      {
        token: TOKEN,
        // The drain command never finishes: the scale-down's drain waits for a person.
        templates: { web: { command: workload, drainCommand: ['sleep', '3600'] }, worker: { command: workload } },
      },
    );
    await server.start();
    const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: { Authorization: `Bearer ${TOKEN}`, 'X-Drover-Actor': 'alice', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    };
    const inService = (gs: GroupRow[]): boolean => gs.length === 3 && gs.every((g) => g.inService === g.size && g.pending === 0);
    await waitFor('groups in service', () => api<GroupRow[]>('GET', '/v1/groups'), inService, 60_000);

    // Drains that wait for their acknowledgement (one within a minute of its deadline: it needs
    // attention), and a protected instance.
    await api('PUT', '/v1/groups/default/web/size', { size: 3 });
    await api('PUT', '/v1/groups/payments/api/size', { size: 2 });
    await waitFor('a drain', () => api<InstanceRow[]>('GET', '/v1/instances?tenant=default&group=web'), (l) => l.some((i) => i.status === 'draining'), 30_000);
    const web = await api<InstanceRow[]>('GET', '/v1/instances?tenant=default&group=web');
    const draining = web.find((i) => i.status === 'draining')!;
    const running = web.find((i) => i.status === 'running')!;
    try {
      await api('PUT', `/v1/instances/${running.id}/protection`, { for: '2h' });
    } catch (err) {
      console.warn(`protection not shown: ${err instanceof Error ? err.message : String(err)}`);
    }

    browser = await BrowserSession.launch(chromium);
    const shot = async (page: Page, name: string, fullPage = false): Promise<void> => {
      await page.waitForTimeout(400); // let debounced refreshes land
      await page.screenshot({ path: join(OUT, name), fullPage });
      console.log(`wrote ${join('docs/screenshots', name)}`);
    };

    const { page } = await browser.page({ width: 1280, height: 860 });
    await page.goto(`${server.url}/`);
    await page.locator('input[name="token"]').waitFor();
    await shot(page, 'login.png');

    await signIn(page, TOKEN);
    await page.locator('[data-testid="groups"] tr[data-group="payments/api"]').waitFor();
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor();
    await page.getByTestId('attention').getByText(/scaleDown, deadline/).waitFor();
    await shot(page, 'fleet.png', true);

    await page.goto(`${server.url}/#/groups/default/web`);
    await page.locator('[data-testid="instances"] tbody tr', { hasText: draining.id }).waitFor();
    await shot(page, 'group.png');

    await page.getByRole('button', { name: 'Scale…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Scale default/web' });
    await dialog.getByLabel('New size').fill('5');
    await dialog.getByRole('button', { name: 'Preview plan' }).click();
    await dialog.getByText(/would create/).waitFor();
    await shot(page, 'scale-dialog.png');
    await page.keyboard.press('Escape');

    await page.goto(`${server.url}/#/instances/${draining.id}`);
    await page.locator('[data-testid="history"] tr[data-action="drain"]').waitFor();
    await shot(page, 'instance.png');

    const dark = await browser.page({ width: 1280, height: 860, colorScheme: 'dark' });
    await dark.page.goto(`${server.url}/`);
    await signIn(dark.page, TOKEN);
    await dark.page.goto(`${server.url}/#/groups/default/web`);
    await dark.page.locator('[data-testid="instances"] tbody tr', { hasText: draining.id }).waitFor();
    await shot(dark.page, 'group-dark.png');

    const phone = await browser.page({ width: 390, height: 844 });
    await phone.page.goto(`${server.url}/`);
    await signIn(phone.page, TOKEN);
    await phone.page.locator('[data-testid="groups"] tr[data-group="payments/api"]').waitFor();
    await shot(phone.page, 'fleet-phone.png');
  } finally {
    await browser?.close();
    await server.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
