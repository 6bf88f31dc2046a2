/**
 * The dashboard's Webhooks view in a real browser against a real server whose notifier sends to
 * a receiver on loopback. Dead letters are made the real way: the receiver answers 500 and the
 * server's manual clock is moved past the endpoint's retryFor. The view lists the endpoint and
 * its dead letters with their last error, redelivers one or all of an endpoint's (the receiver
 * then gets them), offers no redelivery to a viewer, holds a tenant's token to its tenant,
 * pages the log with `before`, and polls only while the tab is visible (on the page's fake clock).
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { ManualClock } from '../../src/clock/index.js';
import type { NotificationEvent } from '../../src/notifications/index.js';
import type { OutboxRow } from '../../src/store/index.js';
import { TestServer } from '../helpers/server-harness.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { BrowserSession, describeWithChromium, findChromium, requireWebBuild, signIn } from './browser.js';

const CHROMIUM = findChromium();

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const GROUPS = { a: { web: { size: 1, template: 'web' } }, b: { web: { size: 1, template: 'web' } } };
/** Nothing happens by time alone in the fleet while the test moves the clock for the notifier. */
const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };

let browser: BrowserSession | undefined;
let t: TestServer | undefined;
let receiver: WebhookReceiver | undefined;
let clock: ManualClock;

beforeAll(async () => {
  if (!CHROMIUM) return;
  requireWebBuild();
  browser = await BrowserSession.launch(CHROMIUM);
});
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await t?.close();
  t = undefined;
  await receiver?.close();
  receiver = undefined;
});

/** A server on a manual clock with endpoint "ops" (group resizes only, retryFor 1m) and a receiver that answers 500 until told otherwise. */
async function startServer(): Promise<{ server: TestServer; hook: WebhookReceiver }> {
  const hook = await WebhookReceiver.start(() => 500);
  clock = new ManualClock(new Date('2026-03-02T09:00:00.000Z'));
  const server = new TestServer({ token: ADMIN, groups: GROUPS, shard: QUIET, clock });
  const secretFile = join(server.dir, 'hook.secret');
  writeFileSync(secretFile, 'webhook-secret-0123456789\n', { mode: 0o600 });
  server.writeConfig({
    server: {
      tokens: [
        { name: 'grafana', role: 'viewer', sha256: sha256(VIEWER) },
        { name: 'team-a', role: 'operator', tenants: ['a'], sha256: sha256(TEAM_A) },
      ],
    },
    notifications: [{ name: 'ops', url: hook.url, secretFile, events: ['groupResized'], retryFor: '1m' }],
  });
  await server.start();
  await server.settle();
  t = server;
  receiver = hook;
  return { server, hook };
}

/** Resizes `tenant`/web to `size` and returns its delivery once the notifier has given it up (a dead letter). */
async function deadLetter(server: TestServer, tenant: 'a' | 'b', size: number): Promise<OutboxRow> {
  const seen = new Set(server.server.db.outbox.list({ limit: 1000 }).map((r) => r.id));
  expect((await server.api('PUT', `/v1/groups/${tenant}/web/size`, { size })).status).toBe(200);
  const fresh = (): OutboxRow | undefined => server.server.db.outbox.list({ endpoint: 'ops', tenants: [tenant], limit: 10 }).find((r) => !seen.has(r.id));
  await expect.poll(() => fresh()?.eventType).toBe('groupResized');
  const id = fresh()!.id;
  // Each turn moves the clock past the retry window (and past an open breaker's pause): the next
  // attempt fails after retryFor, and the delivery is given up.
  await expect
    .poll(
      async () => {
        await clock.advance(90_000);
        return server.server.db.outbox.get(id)?.state;
      },
      { timeout: 20_000 },
    )
    .toBe('dead');
  return server.server.db.outbox.get(id)!;
}

/** The receiver's accepted requests for one event. */
const acceptedFor = (hook: WebhookReceiver, eventId: string): number => hook.accepted().filter((r) => (JSON.parse(r.body) as NotificationEvent).id === eventId).length;

async function signedIn(server: TestServer, token: string, who: string): Promise<{ page: Page; errors: string[]; close: () => Promise<void> }> {
  const { page, errors, context } = await browser!.page();
  await page.goto(`${server.url}/#/webhooks`);
  await signIn(page, token);
  // Actions are shown once the page knows the caller: wait for that before judging them.
  await page.getByTestId('caller').filter({ hasText: who }).waitFor();
  return { page, errors, close: () => context.close() };
}

/** What the tests read of an element in the page (the tests compile without the DOM's types). */
interface PageElement {
  getAttribute(name: string): string | null;
}

/**
 * One attribute of every element a locator matches, in order, read in one step: reading element
 * by element (locator.all(), then each) waits out Playwright's 30 s timeout for an element that a
 * re-render removed in between.
 */
function attributes(locator: Locator, name: string): Promise<Array<string | null>> {
  return locator.evaluateAll((elements: unknown[], attribute: string) => (elements as PageElement[]).map((el) => el.getAttribute(attribute)), name);
}

const deliveryRow = (page: Page, id: number, state?: string) => page.locator(`[data-testid="deliveries"] tr[data-delivery="${id}"]${state ? `[data-state="${state}"]` : ''}`);
const endpointCell = (page: Page, name: string, col: 'pending' | 'dead' | 'breaker') => page.locator(`[data-testid="webhook-endpoints"] tr[data-endpoint="${name}"] td[data-col="${col}"]`);

describeWithChromium('web dashboard: webhooks (sim provider, manual clock)', { timeout: 90_000 }, () => {
  it('lists the endpoint with its dead letter and last error, and redelivers it from the page: the receiver gets it and the log shows it delivered', async () => {
    const { server, hook } = await startServer();
    const dead = await deadLetter(server, 'a', 2);
    expect(hook.requests.length).toBeGreaterThanOrEqual(2);

    const { page, errors, close } = await signedIn(server, ADMIN, 'admin · admin');
    await page.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
    expect(await page.getByRole('link', { name: 'Webhooks' }).getAttribute('aria-current')).toBe('page');
    const endpoint = page.locator('[data-testid="webhook-endpoints"] tr[data-endpoint="ops"]');
    await endpoint.waitFor();
    // The URL as its origin only: the path (where a receiver's secret can be) is not shown.
    expect(await endpoint.textContent()).toContain(`${new URL(hook.url).origin}/…`);
    expect(await endpoint.textContent()).not.toContain('/hook');
    await endpointCell(page, 'ops', 'dead').filter({ hasText: /^1$/ }).waitFor();
    const row = deliveryRow(page, dead.id, 'dead');
    await row.getByTestId('last-error').filter({ hasText: 'the receiver answered HTTP 500' }).waitFor();
    expect(await row.getAttribute('class')).toContain('row-bad');
    expect(await row.textContent()).toContain(dead.eventId);

    hook.answer = () => 200;
    // Past any pause of the breaker the failures opened: the redelivery goes out at once.
    await clock.advance(10 * 60_000);
    await row.getByRole('button', { name: `Redeliver delivery ${dead.id}` }).click();
    const dialog = page.getByRole('dialog', { name: `Redeliver delivery ${dead.id}` });
    await dialog.getByText('the receiver answered HTTP 500').waitFor();
    await dialog.getByRole('button', { name: 'Redeliver' }).click();
    await page.getByRole('status').filter({ hasText: `Delivery ${dead.id} (groupResized to ops) is pending again (HTTP 202)` }).waitFor();
    await hook.until(() => acceptedFor(hook, dead.eventId) === 1);
    // The page polls: the row turns delivered and the endpoint has no dead letter left.
    await deliveryRow(page, dead.id, 'delivered').waitFor();
    await endpointCell(page, 'ops', 'dead').filter({ hasText: /^0$/ }).waitFor();
    expect(server.server.db.outbox.get(dead.id)?.state).toBe('delivered');
    expect(errors).toEqual([]);
    await close();
  });

  it("offers a viewer the endpoints and the log but no redelivery, and a tenant's operator its tenant's dead letters without the endpoint list", async () => {
    const { server } = await startServer();
    const deadA = await deadLetter(server, 'a', 2);
    const deadB = await deadLetter(server, 'b', 2);

    const viewer = await signedIn(server, VIEWER, 'grafana · viewer');
    await endpointCell(viewer.page, 'ops', 'dead').filter({ hasText: /^2$/ }).waitFor();
    await deliveryRow(viewer.page, deadA.id, 'dead').waitFor();
    await deliveryRow(viewer.page, deadB.id, 'dead').waitFor();
    expect(await viewer.page.getByRole('button', { name: /^Redeliver/ }).count()).toBe(0);
    expect(await viewer.page.getByRole('columnheader', { name: 'Actions' }).count()).toBe(0);
    expect(viewer.errors).toEqual([]);
    await viewer.close();

    const team = await signedIn(server, TEAM_A, 'team-a · operator (a)');
    await deliveryRow(team.page, deadA.id, 'dead').waitFor();
    await team.page.getByTestId('endpoints-hidden').waitFor();
    expect(await team.page.getByTestId('webhook-endpoints').count()).toBe(0);
    expect(await deliveryRow(team.page, deadB.id).count()).toBe(0);
    // Its own tenant's dead letter, yes; an endpoint's every dead letter (all tenants), no.
    expect(await attributes(team.page.getByRole('button', { name: /^Redeliver/ }), 'aria-label')).toEqual([`Redeliver delivery ${deadA.id}`]);
    expect(team.errors).toEqual([]);
    await team.close();
  });

  it("redelivers every dead letter of an endpoint after confirming, and filters the log to an endpoint's dead letters", async () => {
    const { server, hook } = await startServer();
    const first = await deadLetter(server, 'a', 2);
    const second = await deadLetter(server, 'b', 2);

    const { page, errors, close } = await signedIn(server, ADMIN, 'admin · admin');
    await endpointCell(page, 'ops', 'dead').filter({ hasText: /^2$/ }).waitFor();
    // The dead-letter count filters the log to them.
    await page.getByRole('button', { name: 'Show the 2 dead letters of ops' }).click();
    expect(await page.getByLabel('State', { exact: true }).inputValue()).toBe('dead');
    expect(await page.getByLabel('Endpoint', { exact: true }).inputValue()).toBe('ops');
    await expect.poll(() => attributes(page.locator('[data-testid="deliveries"] tbody tr[data-delivery]'), 'data-state')).toEqual(['dead', 'dead']);

    hook.answer = () => 200;
    await clock.advance(10 * 60_000);
    await page.getByRole('button', { name: 'Redeliver the dead letters of ops' }).click();
    const dialog = page.getByRole('dialog', { name: 'Redeliver the dead letters of ops' });
    await dialog.getByText('Sends the 2 dead letters of ops again, oldest first').waitFor();
    await dialog.getByRole('button', { name: 'Redeliver' }).click();
    await page.getByRole('status').filter({ hasText: '2 dead letters of ops pending again (HTTP 202)' }).waitFor();
    await hook.until(() => acceptedFor(hook, first.eventId) === 1 && acceptedFor(hook, second.eventId) === 1);
    // Still filtered to dead letters: none left.
    await page.getByText('No delivery matches the filters.').waitFor();
    await endpointCell(page, 'ops', 'dead').filter({ hasText: /^0$/ }).waitFor();
    await page.getByLabel('State', { exact: true }).selectOption('delivered');
    await deliveryRow(page, first.id, 'delivered').waitFor();
    await deliveryRow(page, second.id, 'delivered').waitFor();
    expect(errors).toEqual([]);
    await close();
  });

  it('pages the delivery log newest first, 50 at a time, with Older and Newer', async () => {
    const { server, hook } = await startServer();
    hook.answer = () => 200;
    for (let i = 0; i < 53; i++) expect((await server.api('POST', '/v1/notifications/ops/test')).status).toBe(202);
    await expect.poll(() => server.server.db.outbox.list({ endpoint: 'ops', state: 'delivered', limit: 1000 }).length).toBe(53);
    const ids = server.server.db.outbox.list({ endpoint: 'ops', limit: 1000 }).map((r) => r.id); // newest first

    const { page, errors, close } = await signedIn(server, ADMIN, 'admin · admin');
    const shown = (): Promise<Array<string | null>> => attributes(page.locator('[data-testid="deliveries"] tbody tr[data-delivery]'), 'data-delivery');
    await expect.poll(shown).toEqual(ids.slice(0, 50).map(String));
    expect(await page.getByRole('button', { name: '← Newer' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Older →' }).click();
    await expect.poll(shown).toEqual(ids.slice(50).map(String));
    expect(await page.getByTestId('delivery-page').textContent()).toBe('Page 2');
    // The last page: nothing older.
    expect(await page.getByRole('button', { name: 'Older →' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: '← Newer' }).click();
    await expect.poll(shown).toEqual(ids.slice(0, 50).map(String));
    expect(errors).toEqual([]);
    await close();
  });

  it('polls every 5 s while the tab is visible, not at all while it is hidden, and at once when it shows again', async () => {
    const { server } = await startServer();
    const { page, context } = await browser!.page();
    // Counts the page's reads of the delivery log, and those answered, as they are made.
    await page.addInitScript(`{
      const real = window.fetch.bind(window);
      window.__reads = 0;
      window.__answered = 0;
      window.fetch = (input, init) => {
        if (!String(input).includes('/v1/notifications/deliveries')) return real(input, init);
        window.__reads++;
        return real(input, init).finally(() => window.__answered++);
      };
    }`);
    await page.clock.install();
    await page.goto(`${server.url}/#/webhooks`);
    await signIn(page, ADMIN);
    await page.locator('[data-testid="webhook-endpoints"] tr[data-endpoint="ops"]').waitFor();
    await page.getByText('No event has been sent to an endpoint yet.').waitFor();
    // From here the page's time moves only when the test moves it (and stays under the event
    // stream's 45 s watchdog, which would otherwise reconnect and refetch everything).
    await page.clock.pauseAt(Date.now() + 1_000);
    const reads = (): Promise<number> => page.evaluate<number>('window.__reads');
    const settled = (): Promise<boolean> => page.evaluate<boolean>('window.__reads === window.__answered');
    await expect.poll(settled).toBe(true);
    const start = await reads();

    await page.clock.runFor(5_000);
    await expect.poll(reads).toBe(start + 1);
    await expect.poll(settled).toBe(true);

    await page.evaluate(`Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' }); document.dispatchEvent(new Event('visibilitychange'))`);
    await page.clock.runFor(20_000);
    expect(await reads()).toBe(start + 1);

    await page.evaluate(`Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' }); document.dispatchEvent(new Event('visibilitychange'))`);
    await expect.poll(reads).toBe(start + 2);
    await expect.poll(settled).toBe(true);
    await page.clock.runFor(5_000);
    await expect.poll(reads).toBe(start + 3);
    await context.close();
  });
});
