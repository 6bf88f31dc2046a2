/**
 * The dashboard against a real `drover server` process with the local provider: instances are
 * real processes running `drover agent`. The page follows the event stream: an instance killed
 * with kill -9 disappears and its replacement appears without a reload; a scale-up made from the
 * page converges as the new agents report healthy.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { ProcessServer, requireBuild, waitFor, type InstanceRow } from '../e2e/process-harness.js';
import { BrowserSession, describeWithChromium, findChromium, groupCell, requireWebBuild, signIn } from './browser.js';

const CHROMIUM = findChromium();
const TOKEN = 'live-test-token-0123'; // the server refuses tokens under 16 characters

let browser: BrowserSession | undefined;
let s: ProcessServer | undefined;
let page: Page | undefined;
let pageErrors: string[] = [];

const atSize = (size: number) => (g: { size: number; inService: number; pending: number; live: number; draining: number } | undefined) =>
  g !== undefined && g.size === size && g.inService === size && g.pending === 0 && g.live - g.draining === size;

async function authed<T>(path: string): Promise<T> {
  const res = await fetch(`${s!.url}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  return (await res.json()) as T;
}

describeWithChromium('web dashboard (local provider, real processes)', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    requireBuild();
    requireWebBuild();
    s = new ProcessServer();
    await s.writeConfig({ default: { web: { size: 2, template: 'web', drainTimeout: '10s' } } }, { token: TOKEN });
    await s.start();
    browser = await BrowserSession.launch(CHROMIUM!);
    const opened = await browser.page();
    page = opened.page;
    pageErrors = opened.errors;
    await page.goto(`${s.url}/`);
    await signIn(page, TOKEN);
    await waitFor('web at size', () => authed<Array<{ group: string; size: number; inService: number; pending: number; live: number; draining: number }>>('/v1/groups').then((gs) => gs.find((g) => g.group === 'web')), atSize(2), 45_000);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await s?.cleanup();
  });

  it('shows the groups, and an instance killed with kill -9 replaced, live', async () => {
    const p = page!;
    await groupCell(p, 'default/web', 'inService').filter({ hasText: /^2$/ }).waitFor({ timeout: 20_000 });
    await p.evaluate('window.__sameDocument = true');
    const [victim] = await authed<InstanceRow[]>('/v1/instances?tenant=default&group=web');

    process.kill(-s!.pidOf(victim!.id)!, 'SIGKILL');

    // The fleet page shows what happened, as it happens: the victim leaves, a replacement is created.
    const activity = p.getByTestId('activity');
    await activity.locator('tr[data-action="deleted"], tr[data-action="vanished"], tr[data-action="delete"]', { hasText: victim!.id }).first().waitFor({ timeout: 30_000 });
    await waitFor('replacement', () => authed<InstanceRow[]>('/v1/instances?tenant=default&group=web'), (l) => l.some((i) => i.replaces === victim!.id), 30_000);
    const replacement = (await authed<InstanceRow[]>('/v1/instances?tenant=default&group=web')).find((i) => i.replaces === victim!.id)!;
    await activity.locator('tr[data-action="create"]', { hasText: replacement.id }).waitFor();
    await groupCell(p, 'default/web', 'inService').filter({ hasText: /^2$/ }).waitFor({ timeout: 30_000 });

    // The group page: the victim is gone, the replacement in service.
    await p.goto(`${s!.url}/#/groups/default/web`);
    await p.locator('[data-testid="instances"] tbody tr', { hasText: replacement.id }).getByText('in service').waitFor({ timeout: 30_000 });
    expect(await p.locator('[data-testid="instances"] tbody tr', { hasText: victim!.id }).count()).toBe(0);
    expect(await p.evaluate<boolean>('window.__sameDocument === true')).toBe(true); // never reloaded
    // The replacement's history says why it was created, and what it replaces.
    await p.getByRole('link', { name: replacement.id }).first().click();
    await p.locator('[data-testid="history"] tr[data-action="create"]').waitFor();
    await p.locator('[data-testid="instance-details"]').getByRole('link', { name: victim!.id }).waitFor();
    expect(pageErrors).toEqual([]);
  });

  it('scales a group from the page and watches it converge', async () => {
    const p = page!;
    await p.goto(`${s!.url}/#/`);
    await groupCell(p, 'default/web', 'inService').filter({ hasText: /^2$/ }).waitFor({ timeout: 30_000 });
    await p.getByRole('button', { name: 'Scale default/web' }).click();
    const dialog = p.getByRole('dialog', { name: 'Scale default/web' });
    await dialog.getByLabel('New size').fill('3');
    await dialog.getByRole('button', { name: 'Preview plan' }).click();
    await dialog.getByText('would create 1 instance').waitFor();
    await dialog.getByRole('button', { name: 'Apply size 3' }).click();
    await p.getByRole('status').filter({ hasText: 'scaled from 2 to 3' }).waitFor();
    // Pending first (the new process boots), then in service once its agent reports.
    await groupCell(p, 'default/web', 'inService').filter({ hasText: /^3$/ }).waitFor({ timeout: 30_000 });
    await groupCell(p, 'default/web', 'pending').filter({ hasText: /^0$/ }).waitFor();
    expect(pageErrors).toEqual([]);
  });
});
