/**
 * Headless Chromium for the dashboard's browser tests: Debian's `chromium` driven by
 * playwright-core (no browser download). Without chromium the tests are skipped with a loud
 * warning, or fail with DROVER_REQUIRE_TOOLS=1 (.ci/run sets it and installs chromium).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { TestServer } from '../helpers/server-harness.js';
import { CHROMIUM_TOOL, describeWithTool, findTool, type SuiteArgs } from '../helpers/tools.js';

export const WEB_INDEX = resolve('dist/web/index.html');

/** Flags that keep Chromium off the network: without them it tries services this machine cannot reach. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

/** The chromium to drive, or null when this machine has none (see CHROMIUM_TOOL). */
export function findChromium(): string | null {
  return findTool(CHROMIUM_TOOL);
}

/**
 * `describe` for browser tests: run with chromium; without it, failed when
 * DROVER_REQUIRE_TOOLS=1, else skipped with a warning (test/helpers/tools.ts).
 */
export function describeWithChromium(title: string, ...args: SuiteArgs): void {
  describeWithTool(CHROMIUM_TOOL, title, ...args);
}

export function requireWebBuild(): void {
  if (!existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: run "npm run build" first (npm test does)`);
}

export class BrowserSession {
  private profile: string | undefined;

  private constructor(
    readonly browser: Browser,
    profile: string,
  ) {
    this.profile = profile;
  }

  /** Launches headless Chromium with a fresh profile. */
  static async launch(executablePath: string): Promise<BrowserSession> {
    const profile = mkdtempSync(join(tmpdir(), 'drover-chromium-'));
    const browser = await chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS, `--crash-dumps-dir=${profile}`] });
    return new BrowserSession(browser, profile);
  }

  async page(options: { width?: number; height?: number; colorScheme?: 'light' | 'dark' } = {}): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
    const context = await this.browser.newContext({ viewport: { width: options.width ?? 1280, height: options.height ?? 900 }, colorScheme: options.colorScheme ?? 'light', reducedMotion: 'reduce' });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    return { context, page, errors };
  }

  async close(): Promise<void> {
    await this.browser.close().catch(() => undefined);
    if (this.profile) rmSync(this.profile, { recursive: true, force: true });
    this.profile = undefined;
  }
}

/** Signs in through the page's form (input named `token`). */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.locator('input[name="token"]').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** The text of a cell of the fleet table's row for a group. */
export function groupCell(page: Page, group: string, col: 'size' | 'inService' | 'pending' | 'draining' | 'unhealthy') {
  return page.locator(`[data-testid="groups"] tr[data-group="${group}"] td[data-col="${col}"]`);
}

/**
 * Plays the agents of a simulated fleet: every running instance reports health every 200 ms.
 * Returns the function that stops it.
 */
export function reportHealth(server: TestServer): () => void {
  const tick = (): void => {
    const db = server.server.db;
    if (!db.isOpen) return; // the test stopped the server
    db.recordHealthBatch(db.listInstances().filter((i) => i.status === 'running').map((i) => ({ instanceId: i.id, at: new Date() })));
  };
  tick();
  const timer = setInterval(tick, 200);
  return () => clearInterval(timer);
}

/**
 * A TCP pass-through between the page and the server that the test can cut: the page's
 * connections (its event stream among them) drop at once, while the server runs on. Chromium's
 * offline emulation cannot do this: it leaves an open stream open.
 */
export class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private cutOff = false;
  /** Where the page goes instead of the server. */
  url = '';

  private constructor(private readonly target: URL) {
    this.server = createServer((client) => this.accept(client));
  }

  /** Listens on 127.0.0.1 (an address: the server accepts any IP literal as its Host). */
  static async start(target: string): Promise<CuttableProxy> {
    const proxy = new CuttableProxy(new URL(target));
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  private accept(client: Socket): void {
    if (this.cutOff) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(this.target.port), this.target.hostname);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => (client.destroy(), upstream.destroy()));
    }
    client.pipe(upstream).pipe(client);
  }

  /** Drops every connection through the proxy, and every new one until `restore`. */
  cut(): void {
    this.cutOff = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
