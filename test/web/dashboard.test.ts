/**
 * The web dashboard in a real browser (headless Chromium) against a real Drover server over a
 * simulated cloud: sign-in, the scale form and its server-side errors, drains acknowledged,
 * extended and protected from the page, live banners for leadership and lost connections, a
 * stream reset after too much was missed, and a group about to be removed.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { stringify } from 'yaml';
import type { InstanceView } from '../../src/server/views.js';
import { TestServer } from '../helpers/server-harness.js';
import { BrowserSession, describeWithChromium, findChromium, CuttableProxy, groupCell, reportHealth, requireWebBuild, signIn } from './browser.js';

const CHROMIUM = findChromium();

let browser: BrowserSession | undefined;
let t: TestServer | undefined;
let stopReporting: (() => void) | undefined;
let proxy: CuttableProxy | undefined;

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
  await proxy?.close();
  proxy = undefined;
  await t?.close();
  t = undefined;
});

async function startServer(options: ConstructorParameters<typeof TestServer>[0] = {}): Promise<TestServer> {
  const server = await new TestServer(options).start();
  await server.settle();
  stopReporting = reportHealth(server);
  await server.settle();
  return server;
}

async function open(path: string, token?: string): Promise<{ page: Page; errors: string[] }> {
  const { page, errors } = await browser!.page();
  await page.goto(`${t!.url}/${path}`);
  if (token) await signIn(page, token);
  return { page, errors };
}

describeWithChromium('web dashboard (sim provider)', { timeout: 60_000 }, () => {
  it('asks for the token in a form, refuses a wrong one, and keeps the token for the session only, never in a URL', async () => {
    t = await startServer({ token: 'sekret-token-0123' });
    const { page, errors } = await browser!.page();
    const urls: string[] = [];
    page.on('request', (req) => urls.push(req.url()));
    await page.goto(`${t.url}/`);
    const token = page.locator('input[name="token"]');
    await expect.poll(() => token.isVisible()).toBe(true);
    expect(await token.getAttribute('type')).toBe('password');
    expect(await page.getByLabel('API token').count()).toBe(1);

    await signIn(page, 'not-the-token');
    await page.getByRole('alert').filter({ hasText: 'wrong token' }).waitFor();
    expect(await token.isVisible()).toBe(true);

    await signIn(page, 'sekret-token-0123');
    await page.getByRole('heading', { name: 'Fleet', level: 1 }).waitFor();
    await groupCell(page, 'default/web', 'size').filter({ hasText: '2' }).waitFor();
    expect(await page.evaluate<string | null>("sessionStorage.getItem('drover.token')")).toBe('sekret-token-0123');
    expect(await page.evaluate<number>('localStorage.length')).toBe(0);
    // A reload keeps the session; the token never appears in a URL.
    await page.reload();
    await groupCell(page, 'default/web', 'size').filter({ hasText: '2' }).waitFor();
    expect(urls.filter((u) => u.includes('sekret'))).toEqual([]);
    expect(urls.some((u) => u.endsWith('/v1/events'))).toBe(true);
    expect(errors).toEqual([]);

    // Another browser session starts signed out.
    const other = await browser!.page();
    await other.page.goto(`${t.url}/`);
    await other.page.locator('input[name="token"]').waitFor();
    await other.context.close();
  });

  it('refuses the API to a page of another origin', async () => {
    t = await startServer({ token: 'sekret-token-0123' });
    const { page } = await browser!.page();
    await page.goto('about:blank');
    // A page elsewhere (here: an opaque origin) that knows the token still cannot use the API.
    const status = await page.evaluate<number>(`fetch(${JSON.stringify(`${t.url}/v1/groups`)}, { headers: { Authorization: 'Bearer sekret-token-0123' } }).then((r) => r.status, () => -1)`);
    expect([403, -1]).toContain(status); // refused by the server, or blocked by the browser's CORS check
    const direct = await t.api('GET', '/v1/groups', undefined, { Origin: 'http://elsewhere.example' });
    expect(direct.status).toBe(403);
  });

  it("shows the server's error for invalid input in the scale form, and the dry-run plan before applying", async () => {
    t = await startServer();
    const { page, errors } = await open('#/groups/default/web');
    await page.getByRole('button', { name: 'Scale…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Scale default/web' });
    const size = dialog.getByLabel('New size');
    await size.fill('abc');
    await size.press('Enter');
    await dialog.getByRole('alert').filter({ hasText: 'HTTP 400: invalid size: size: size must be a number' }).waitFor();
    await size.fill('-1');
    await dialog.getByRole('button', { name: 'Preview plan' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'size must be >= 0' }).waitFor();
    await size.fill('100001');
    await size.press('Enter');
    await dialog.getByRole('alert').filter({ hasText: 'size must be <= 100000' }).waitFor();
    // A valid size: the plan first, nothing applied yet.
    await size.fill('1');
    await size.press('Enter');
    await dialog.getByText(/would drain 1: i-/).waitFor();
    expect((await t.api<{ size: number }>('GET', '/v1/groups/default/web')).body.size).toBe(2);
    // Escape closes the dialog without applying.
    await page.keyboard.press('Escape');
    await expect.poll(() => dialog.isVisible()).toBe(false);
    expect((await t.api<{ size: number }>('GET', '/v1/groups/default/web')).body.size).toBe(2);
    expect(errors).toEqual([]);
  });

  it('scales a group through the page and shows it converge, live', async () => {
    t = await startServer();
    const { page, errors } = await open('');
    await groupCell(page, 'default/web', 'inService').filter({ hasText: /^2$/ }).waitFor();
    await page.evaluate('window.__sameDocument = true');
    await page.getByRole('button', { name: 'Scale default/web' }).click();
    const dialog = page.getByRole('dialog', { name: 'Scale default/web' });
    await dialog.getByLabel('New size').fill('5');
    await dialog.getByRole('button', { name: 'Preview plan' }).click();
    await dialog.getByText('would create 3 instances').waitFor();
    await dialog.getByRole('button', { name: 'Apply size 5' }).click();
    await page.getByRole('status').filter({ hasText: 'default/web scaled from 2 to 5 (HTTP 200)' }).waitFor();
    await groupCell(page, 'default/web', 'size').filter({ hasText: /^5 \(config 2\)$/ }).waitFor();
    await groupCell(page, 'default/web', 'inService').filter({ hasText: /^5$/ }).waitFor({ timeout: 15_000 });
    await groupCell(page, 'default/web', 'pending').filter({ hasText: /^0$/ }).waitFor();
    expect(await page.evaluate<boolean>('window.__sameDocument === true')).toBe(true); // updated in place, not reloaded
    const audit = (await t.api<Array<{ action: string; actor: string }>>('GET', '/v1/audit?group=default/web')).body;
    expect(audit.find((a) => a.action === 'scale')?.actor).toBe('operator:dashboard');
    expect(errors).toEqual([]);
  });

  it('acknowledges a drain from the page', async () => {
    t = await startServer({ groups: { default: { web: { size: 2, template: 'web', drainTimeout: '10m' } } } });
    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await t.settle();
    const victim = (await t.api<InstanceView[]>('GET', '/v1/instances?tenant=default&group=web')).body.find((i) => i.status === 'draining')!;
    expect(victim).toBeDefined();
    const { page, errors } = await open('#/groups/default/web');
    const row = page.locator('[data-testid="instances"] tbody tr', { hasText: victim.id });
    await row.getByText(/scaleDown, in (9m|10m)/).waitFor();
    await row.getByRole('button', { name: `Acknowledge ${victim.id}` }).click();
    const dialog = page.getByRole('dialog', { name: `Acknowledge the drain of ${victim.id}` });
    await dialog.getByRole('button', { name: 'Acknowledge drain' }).click();
    await page.getByRole('status').filter({ hasText: `Drain of ${victim.id} acknowledged (HTTP 202)` }).waitFor();
    await expect.poll(async () => (await t!.api<InstanceView>('GET', `/v1/instances/${victim.id}`)).body.status, { timeout: 10_000 }).toBe('deleted');
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    // The instance's history says who acknowledged.
    await page.goto(`${t.url}/#/instances/${victim.id}`);
    await page.locator('[data-testid="history"] tr[data-action="drainAcked"]', { hasText: 'operator:dashboard' }).waitFor();
    await page.locator('[data-testid="history"] tr[data-action="deleted"]').waitFor();
    expect(errors).toEqual([]);
  });

  it('extends a drain and protects an instance from the page; a bad duration shows the server error', async () => {
    t = await startServer({ groups: { default: { web: { size: 3, template: 'web', drainTimeout: '10m' } } } });
    await t.api('PUT', '/v1/groups/default/web/size', { size: 2 });
    await t.settle();
    const all = (await t.api<InstanceView[]>('GET', '/v1/instances?tenant=default&group=web')).body;
    const draining = all.find((i) => i.status === 'draining')!;
    const running = all.find((i) => i.status === 'running')!;
    const { page, errors } = await open(`#/instances/${draining.id}`);
    await page.getByRole('button', { name: 'Extend' }).click();
    const extend = page.getByRole('dialog', { name: `Extend the drain of ${draining.id}` });
    await extend.getByLabel('Extend by').fill('soon');
    await extend.getByRole('button', { name: 'Extend deadline' }).click();
    await extend.getByRole('alert').filter({ hasText: /HTTP 400: invalid body: by: must be a duration/ }).waitFor();
    await extend.getByLabel('Extend by').fill('5m');
    await extend.getByRole('button', { name: 'Extend deadline' }).click();
    await page.getByRole('status').filter({ hasText: `Drain of ${draining.id} extended (HTTP 200)` }).waitFor();
    await page.locator('[data-testid="history"] tr', { hasText: 'operator:dashboard' }).first().waitFor();

    await page.goto(`${t.url}/#/instances/${running.id}`);
    await page.getByRole('button', { name: 'Protect' }).click();
    const protect = page.getByRole('dialog', { name: `Protect ${running.id}` });
    await protect.getByLabel('Protect for').fill('2h');
    await protect.getByRole('button', { name: 'Protect' }).click();
    await page.getByRole('status').filter({ hasText: `${running.id} is protected until` }).waitFor();
    await page.locator('[data-testid="instance-details"]').getByText(/^until /).waitFor();
    expect((await t.api<InstanceView>('GET', `/v1/instances/${running.id}`)).body.protectedUntil).not.toBeNull();
    expect(errors).toEqual([]);
  });

  it('shows what sets a group size and why, the next schedule, and an asleep badge while its tenant sleeps', async () => {
    t = await startServer({ groups: { default: { web: { size: 2, template: 'web', drainTimeout: '10m', schedules: [{ cron: '0 0 1 1 *', size: 2, name: 'new year' }] } } } });
    const { page, errors } = await open('#/groups/default/web');
    await page.getByTestId('size-source').filter({ hasText: 'the config' }).waitFor();
    await page.getByTestId('next-schedule').filter({ hasText: '“new year” sets 2 at' }).waitFor();
    expect(await page.getByTestId('asleep-badge').count()).toBe(0);
    await t.api('POST', '/v1/tenants/default/sleep', {});
    await page.getByTestId('asleep-badge').waitFor({ timeout: 10_000 });
    await page.getByTestId('size-reason').filter({ hasText: /^tenant default is asleep/ }).waitFor();
    expect(errors).toEqual([]);
  });

  it('starts and cancels an operator drain from the page', async () => {
    t = await startServer({ groups: { default: { web: { size: 2, template: 'web', drainTimeout: '10m' } } } });
    const [first] = (await t.api<InstanceView[]>('GET', '/v1/instances?tenant=default&group=web')).body;
    const { page, errors } = await open(`#/instances/${first!.id}`);
    await page.getByRole('button', { name: 'Drain', exact: true }).click();
    const drain = page.getByRole('dialog', { name: `Drain ${first!.id}` });
    await drain.getByRole('button', { name: 'Start drain' }).click();
    await page.getByRole('status').filter({ hasText: `Drain of ${first!.id} started (HTTP 202)` }).waitFor();
    // The page follows the drain as it happens (replacement first, then the drain).
    await page.getByRole('button', { name: 'Cancel drain' }).waitFor({ timeout: 15_000 });
    await page.getByRole('button', { name: 'Cancel drain' }).click();
    await page.getByRole('dialog', { name: `Cancel the drain of ${first!.id}` }).getByRole('button', { name: 'Cancel drain' }).click();
    await page.getByRole('status').filter({ hasText: `Drain of ${first!.id} cancelled (HTTP 200)` }).waitFor();
    await expect.poll(async () => (await t!.api<InstanceView>('GET', `/v1/instances/${first!.id}`)).body.status, { timeout: 10_000 }).toBe('running');
    expect(errors).toEqual([]);
  });

  it('shows template drift when the template changes', async () => {
    t = await startServer({ groups: { default: { web: { size: 2, template: 'web', drainTimeout: '10m', maxSurge: 2 } } } });
    const { page, errors } = await open('#/groups/default/web');
    await page.getByText('every instance runs it').waitFor();
    const config = t.configObject() as { templates: Record<string, unknown> };
    t.writeRawConfig(stringify({ ...config, templates: { ...config.templates, web: { image: 'web:2' } } }));
    // The config event refreshes the page: the old instances are drifted while they rotate out.
    await page.getByText(/of \d+ instances run an older template/).waitFor({ timeout: 10_000 });
    await page.locator('[data-testid="instances"] tbody tr', { hasText: 'drifted' }).first().waitFor();
    expect(errors).toEqual([]);
  });

  it('lists what needs attention: provider errors reported by the reconciler, as they happen', async () => {
    t = await startServer();
    const { page, errors } = await open('');
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor();
    await page.getByText('Nothing needs attention.').waitFor();
    t.provider.failCreates(1, { permanent: true });
    await t.api('PUT', '/v1/groups/default/web/size', { size: 3 });
    const attention = page.getByTestId('attention');
    await attention.getByText(/injected failure/).first().waitFor({ timeout: 10_000 });
    await expect.poll(() => page.getByText('Nothing needs attention.').isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });

  it('lists a group that left the config under Needs attention, with the time left before its instances go', async () => {
    const groups = { default: { web: { size: 2, template: 'web' }, api: { size: 1, template: 'web' } } };
    t = await startServer({ groups, shard: { groupRemovalGrace: '10m' } });
    const { page, errors } = await open('');
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor();
    await page.getByText('Nothing needs attention.').waitFor();

    t.writeConfig({ groups: { default: { web: groups.default.web } } });
    const item = page.getByTestId('attention').locator('li', { hasText: 'RemovalPending' });
    await item.filter({ hasText: 'default/api' }).filter({ hasText: /\((9m \d+s|10m) left\)/ }).waitFor({ timeout: 10_000 });
    expect(await item.count()).toBe(1); // only the group that left
    await page.getByTestId('activity').locator('tr[data-action="removalPending"]', { hasText: 'default/api' }).waitFor();
    // Its own page says the same, and when.
    await page.getByRole('link', { name: 'default/api' }).first().click();
    await page.getByText(/no longer in the config: its instances are removed in (9m \d+s|10m) \(/).waitFor();

    // The config brings it back: nothing needs attention any more, and the activity says so.
    t.writeConfig({ groups });
    await page.getByRole('link', { name: 'Fleet', exact: true }).first().click();
    await page.getByTestId('activity').locator('tr[data-action="removalCancelled"]', { hasText: 'default/api' }).waitFor({ timeout: 10_000 });
    await page.getByText('Nothing needs attention.').waitFor();
    expect(await item.count()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('refetches every view when the stream says it missed too much to replay (reset), and resumes afresh', async () => {
    t = await startServer();
    proxy = await CuttableProxy.start(t.url);
    const { page, errors } = await browser!.page();
    const resumedFrom: Array<string | null> = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname === '/v1/events') resumedFrom.push(req.headers()['last-event-id'] ?? null);
    });
    await page.goto(`${proxy.url}/`);
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor();
    // A change while connected: the page has an event id to resume from.
    await t.api('PUT', '/v1/groups/default/web/size', { size: 3 });
    await t.settle();
    await groupCell(page, 'default/web', 'size').filter({ hasText: /^3 \(config 2\)$/ }).waitFor();
    const lastSeen = t.server.db.listAudit({}).at(-1)!.seq;

    // Cut off: the page misses a scale, and more audit entries than the server replays.
    proxy.cut();
    await page.getByTestId('stream-status').filter({ hasText: 'Disconnected' }).waitFor();
    await t.api('PUT', '/v1/groups/default/web/size', { size: 4 });
    await t.settle();
    const db = t.server.db;
    db.transaction(() => {
      for (let k = 0; k < 1_001; k++) db.appendAudit({ at: new Date(), tenant: 'default', group: 'web', instanceId: null, action: 'scale', reason: 'operator', detail: `filler ${k}` });
    });
    const lastFiller = db.listAudit({}).at(-1)!.seq;
    const requestsBefore = resumedFrom.length;
    proxy.restore();

    // It resumes from where it was; the server answers that with a reset, and the page shows the
    // state as it is now.
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });
    await groupCell(page, 'default/web', 'size').filter({ hasText: /^4 \(config 2\)$/ }).waitFor({ timeout: 10_000 });
    const resumeId = resumedFrom.slice(requestsBefore).at(-1);
    expect(Number(resumeId)).toBeGreaterThanOrEqual(lastSeen);
    expect(Number(resumeId)).toBeLessThan(lastFiller - 1_000);
    expect(await firstEventsAfter(t.url, resumeId!, 'reset')).toContain('event: reset');

    // After the reset its old position is worthless: the next reconnect does not ask to resume
    // from it (it sends no id, or one it received after the reset).
    proxy.cut();
    await page.getByTestId('stream-status').filter({ hasText: 'Disconnected' }).waitFor();
    const requestsAfterReset = resumedFrom.length;
    proxy.restore();
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });
    for (const id of resumedFrom.slice(requestsAfterReset)) if (id !== null) expect(Number(id)).toBeGreaterThan(lastFiller);
    expect(resumedFrom.slice(requestsAfterReset).length).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  });

  it('says when this server is not the leader, and when the connection to it is lost', async () => {
    t = await startServer();
    const { page, errors } = await open('');
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor();
    await t.server.elector.stop();
    await page.getByTestId('banner-not-leader').waitFor();
    await t.server.elector.start();
    await expect.poll(() => page.getByTestId('banner-not-leader').count()).toBe(0);
    await t.stop();
    await page.getByTestId('banner-disconnected').filter({ hasText: 'Connection to the server lost' }).waitFor();
    await page.getByTestId('stream-status').filter({ hasText: 'Disconnected' }).waitFor();
    expect(errors).toEqual([]);
  });

  it('keeps the not-leader banner when a /healthz answer taken while it led arrives after the leadership event', async () => {
    t = await startServer();
    const { page, errors } = await browser!.page();
    // Every /healthz answer is read from the server at once but handed to the page only when the
    // test says: the answer says "leader" and reaches the page after the stream said "not".
    const held: Array<() => Promise<void>> = [];
    let asked = 0;
    await page.route('**/healthz', async (route) => {
      const answer = await route.fetch();
      asked++;
      held.push(() => route.fulfill({ response: answer }));
    });
    await page.goto(`${t.url}/`);
    await page.getByTestId('stream-status').filter({ hasText: 'Live' }).waitFor();
    await expect.poll(() => asked).toBeGreaterThan(0);
    await t.server.elector.stop();
    await page.getByTestId('banner-not-leader').waitFor();
    for (const release of held.splice(0)) await release();
    // The late answer was applied (the version it carries shows in the footer) and the banner stays.
    await page.locator('footer').filter({ hasText: /Drover \d/ }).waitFor();
    expect(await page.getByTestId('banner-not-leader').count()).toBe(1);
    await page.unroute('**/healthz');
    expect(errors).toEqual([]);
  });

  it("pages the fleet's groups from the server, filters them, and shows the fleet's totals", async () => {
    // 101 groups: one more than a page. Only default/web has instances.
    const extra = Object.fromEntries(Array.from({ length: 100 }, (_, n) => [`g${String(n).padStart(3, '0')}`, { size: 0, template: 'web' }]));
    t = await startServer({ groups: { default: { web: { size: 2, template: 'web', drainTimeout: '1m' } }, other: extra } });
    const { page, errors } = await open('');
    const rows = page.locator('[data-testid="groups"] tbody tr[data-group]');
    await page.getByTestId('fleet-totals').getByText('101 groups, 2 instances: 2 running.').waitFor();
    await expect.poll(() => rows.count()).toBe(100);
    expect(await rows.first().getAttribute('data-group')).toBe('default/web');
    const pager = page.getByTestId('groups-pager');
    await pager.getByRole('button', { name: 'Next' }).click();
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-group')).toBe('other/g099');
    expect(await pager.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await pager.getByRole('button', { name: 'Previous' }).click();
    await expect.poll(() => rows.count()).toBe(100);
    await pager.getByLabel('Filter').fill('g05');
    await expect.poll(() => rows.count()).toBe(10);
    expect(await rows.first().getAttribute('data-group')).toBe('other/g050');
    expect(errors).toEqual([]);
  });

  it('is usable at phone width and by keyboard alone', async () => {
    t = await startServer();
    const { page, context } = await browser!.page({ width: 390, height: 844 });
    await page.goto(`${t.url}/`);
    await groupCell(page, 'default/web', 'size').waitFor();
    // No horizontal scrolling of the page itself: wide tables scroll inside their own box.
    expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
    // Keyboard: Tab reaches the group link, Enter opens the group, the heading takes focus.
    for (let i = 0; i < 15; i++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate<string>('document.activeElement?.textContent ?? ""')) === 'default/web') break;
    }
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'default/web', level: 1 }).waitFor();
    await expect.poll(() => page.evaluate<string>('document.activeElement?.tagName ?? ""')).toBe('H1');
    await context.close();
  });
});

/** The start of the event stream as the server sends it to a client resuming after `lastEventId`, up to `until`. */
async function firstEventsAfter(url: string, lastEventId: string, until: string): Promise<string> {
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/events`, { headers: { Accept: 'text/event-stream', 'Last-Event-ID': lastEventId }, signal: controller.signal });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  try {
    // Everything a resume gets comes right after the hello; a keep-alive follows 15 s later.
    while (!text.includes(until) && !text.includes(': keep-alive')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    controller.abort();
  }
  return text;
}
