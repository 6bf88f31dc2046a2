/**
 * The dashboard for tokens with roles and tenants, in a real browser against a real server: the
 * page says who is signed in, offers a viewer no action anywhere (and an admin every one, on the
 * same pages), shows an operator limited to a tenant only that tenant and lets it act there, and
 * shows the server's refusal when the role changed after the page asked.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { InstanceView } from '../../src/server/views.js';
import { TestServer } from '../helpers/server-harness.js';
import { BrowserSession, describeWithChromium, findChromium, groupCell, reportHealth, requireWebBuild, signIn } from './browser.js';

const CHROMIUM = findChromium();

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const tokens = (teamARole: 'operator' | 'viewer'): Array<Record<string, unknown>> => [
  { name: 'grafana', role: 'viewer', sha256: sha256(VIEWER) },
  { name: 'team-a', role: teamARole, tenants: ['a'], sha256: sha256(TEAM_A) },
];
const GROUPS = { a: { web: { size: 2, template: 'web', drainTimeout: '10m' } }, b: { api: { size: 1, template: 'web' } } };

/** Every button that changes something, by its accessible name (row buttons name their instance or group). */
const ACTION_BUTTON = /^(Scale|Acknowledge|Extend|Cancel drain|Force|Drain|Protect|Unprotect)\b/;

let browser: BrowserSession | undefined;
let t: TestServer | undefined;
let stopReporting: (() => void) | undefined;

beforeAll(async () => {
  if (!CHROMIUM) return;
  requireWebBuild();
  browser = await BrowserSession.launch(CHROMIUM);
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  stopReporting?.();
  stopReporting = undefined;
  await t?.close();
  t = undefined;
});

/** A server with the legacy admin token (the harness's API client uses it) and the scoped tokens. */
async function startServer(): Promise<TestServer> {
  const server = await new TestServer({ token: ADMIN, groups: GROUPS, server: { tokens: tokens('operator') } }).start();
  await server.settle();
  stopReporting = reportHealth(server);
  await server.settle();
  return server;
}

async function signedIn(token: string, who: string): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
  const { page, errors, context } = await browser!.page();
  await page.goto(`${t!.url}/`);
  await signIn(page, token);
  // Actions are shown once the page knows the caller: wait for that before judging them.
  await page.getByTestId('caller').filter({ hasText: who }).waitFor();
  return { page, errors, close: () => context.close() };
}

/** What the tests read of an element in the page (the tests compile without the DOM's types). */
interface PageElement {
  getAttribute(name: string): string | null;
  closest(selector: string): unknown;
  textContent: string | null;
}

/**
 * The accessible names of the action buttons on the page as it is now. The column headers'
 * sort buttons are not actions (the instance table sorts by a column named "Drain").
 */
async function actionNames(page: Page): Promise<string[]> {
  // In one step: a re-render between finding the buttons and reading each would leave a locator
  // that waits out Playwright's timeout.
  return page
    .getByRole('button', { name: ACTION_BUTTON })
    .evaluateAll((buttons: unknown[]) => (buttons as PageElement[]).filter((b) => b.closest('thead') === null).map((b) => (b.getAttribute('aria-label') ?? b.textContent ?? '').trim()));
}

describeWithChromium('web dashboard with scoped tokens (sim provider)', { timeout: 60_000 }, () => {
  it('shows a viewer who it is and no action on the fleet, group and instance pages, where an admin has them all', async () => {
    t = await startServer();
    // One drain in progress (10 minutes), so the drain actions have an instance to act on.
    await t.api('PUT', '/v1/groups/a/web/size', { size: 1 });
    await t.settle();
    const all = (await t.api<InstanceView[]>('GET', '/v1/instances?tenant=a&group=web')).body;
    const draining = all.find((i) => i.status === 'draining')!;
    const running = all.find((i) => i.status === 'running')!;
    expect(draining).toBeDefined();
    expect(running).toBeDefined();

    /** Visits every view and returns the action buttons each shows, once its data is on the page. */
    const actionsEverywhere = async (page: Page): Promise<Record<string, string[]>> => {
      const seen: Record<string, string[]> = {};
      await page.goto(`${t!.url}/#/`);
      await groupCell(page, 'a/web', 'size').filter({ hasText: /^1 \(config 2\)$/ }).waitFor();
      await groupCell(page, 'b/api', 'size').waitFor();
      seen.fleet = await actionNames(page);
      await page.goto(`${t!.url}/#/groups/a/web`);
      await page.locator('[data-testid="instances"] tbody tr', { hasText: draining.id }).getByText(/scaleDown, in/).waitFor();
      await page.locator('[data-testid="instances"] tbody tr', { hasText: running.id }).waitFor();
      await page.getByTestId('group-counts').waitFor();
      seen.group = await actionNames(page);
      for (const i of [draining, running]) {
        await page.goto(`${t!.url}/#/instances/${i.id}`);
        await page.getByTestId('instance-details').getByText(i.status, { exact: true }).first().waitFor();
        seen[i.status] = await actionNames(page);
      }
      return seen;
    };

    const admin = await signedIn(ADMIN, 'admin · admin');
    const adminSees = await actionsEverywhere(admin.page);
    expect(adminSees.fleet).toEqual(['Scale a/web', 'Scale b/api']);
    expect(adminSees.group).toEqual(expect.arrayContaining(['Scale…', `Acknowledge ${draining.id}`, `Extend ${draining.id}`, `Cancel drain ${draining.id}`, `Force ${draining.id}`, `Drain ${running.id}`, `Protect ${running.id}`]));
    expect(adminSees.draining).toEqual(['Acknowledge', 'Extend', 'Cancel drain', 'Force']);
    expect(adminSees.running).toEqual(['Drain', 'Protect']);
    expect(admin.errors).toEqual([]);
    await admin.close();

    const viewer = await signedIn(VIEWER, 'grafana · viewer');
    expect(await actionsEverywhere(viewer.page)).toEqual({ fleet: [], group: [], draining: [], running: [] });
    // Not even an empty actions column on the fleet or group page.
    await viewer.page.goto(`${t.url}/#/groups/a/web`);
    await viewer.page.locator('[data-testid="instances"] tbody tr', { hasText: running.id }).waitFor();
    expect(await viewer.page.getByRole('columnheader', { name: 'Actions' }).count()).toBe(0);
    expect(viewer.errors).toEqual([]);
    await viewer.close();
  });

  it("shows an operator limited to tenant a only a's groups, and lets it scale them", async () => {
    t = await startServer();
    const { page, errors, close } = await signedIn(TEAM_A, 'team-a · operator (a)');
    await groupCell(page, 'a/web', 'size').filter({ hasText: /^2$/ }).waitFor();
    expect(await page.locator('[data-testid="groups"] tbody tr[data-group]').evaluateAll((rows: unknown[]) => (rows as PageElement[]).map((row) => row.getAttribute('data-group')))).toEqual(['a/web']);

    await page.getByRole('button', { name: 'Scale a/web' }).click();
    const dialog = page.getByRole('dialog', { name: 'Scale a/web' });
    await dialog.getByLabel('New size').fill('3');
    await dialog.getByRole('button', { name: 'Preview plan' }).click();
    await dialog.getByText('would create 1 instance').waitFor();
    await dialog.getByRole('button', { name: 'Apply size 3' }).click();
    await page.getByRole('status').filter({ hasText: 'a/web scaled from 2 to 3 (HTTP 200)' }).waitFor();
    await groupCell(page, 'a/web', 'size').filter({ hasText: /^3 \(config 2\)$/ }).waitFor();
    const audit = (await t.api<Array<{ action: string; actor: string }>>('GET', '/v1/audit?group=a/web')).body;
    expect(audit.find((a) => a.action === 'scale')?.actor).toBe('operator:team-a/dashboard');

    // Another tenant's group is not there for it, and offers nothing.
    await page.goto(`${t.url}/#/groups/b/api`);
    await page.getByRole('alert').filter({ hasText: 'HTTP 404' }).waitFor();
    expect(await actionNames(page)).toEqual([]);
    expect(errors).toEqual([]);
    await close();
  });

  it("shows the server's refusal when the role was taken away after the page asked, then hides the action", async () => {
    t = await startServer();
    const operatorAnswer = { name: 'team-a', role: 'operator', tenants: ['a'], authRequired: true };
    const { page, errors, close } = await signedIn(TEAM_A, 'team-a · operator (a)');
    await page.getByRole('button', { name: 'Scale a/web' }).click();
    const dialog = page.getByRole('dialog', { name: 'Scale a/web' });
    await dialog.getByLabel('New size').fill('3');
    await dialog.getByRole('button', { name: 'Preview plan' }).click();
    await dialog.getByText('would create 1 instance').waitFor();

    // The config makes team-a a viewer. The page asks who it is on the config event, but (as a
    // page that learns late would) is told the old answer once: its Apply button stays.
    let staleServed = (): void => undefined;
    const served = new Promise<void>((resolve) => (staleServed = resolve));
    await page.route(
      '**/v1/whoami',
      async (route) => {
        await route.fulfill({ json: operatorAnswer });
        staleServed();
      },
      { times: 1 },
    );
    t.writeConfig({ server: { tokens: tokens('viewer') } });
    await served;
    await expect.poll(async () => (await fetch(`${t!.url}/v1/whoami`, { headers: { Authorization: `Bearer ${TEAM_A}` } }).then((r) => r.json() as Promise<{ role: string }>)).role).toBe('viewer');
    expect(await page.getByTestId('caller').textContent()).toContain('team-a · operator (a)');

    await dialog.getByRole('button', { name: 'Apply size 3' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'HTTP 403: token team-a (role viewer) may not do this: it needs the operator role' }).waitFor();
    expect((await t.api<{ size: number }>('GET', '/v1/groups/a/web')).body.size).toBe(2);
    // The refusal makes the page ask again: it now knows, and offers nothing more.
    await page.getByTestId('caller').filter({ hasText: 'team-a · viewer (a)' }).waitFor();
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);
    expect(await actionNames(page)).toEqual([]);
    // Its opener is gone: focus goes to the page's heading, not nowhere.
    await expect.poll(() => page.evaluate<string>('document.activeElement?.tagName ?? ""')).toBe('H1');
    expect(errors).toEqual([]);
    await close();
  });
});
