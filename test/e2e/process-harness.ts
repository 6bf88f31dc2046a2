/**
 * End-to-end harness: runs the built CLI (`dist/cli/main.js`) as real processes — a server with
 * the local provider whose instances are real detached processes running `drover agent`.
 * Everything listens on 127.0.0.1; every instance process is killed when the test ends.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { OpenApiChecker } from '../helpers/openapi-check.js';

export const CLI = resolve('dist/cli/main.js');

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
}

/**
 * The templates with DROVER_E2E_DIR passed to their instances: the local provider gives an
 * instance only an allow-listed environment, and this variable is how a test finds (and at the
 * end kills) every process it caused.
 */
export function findableTemplates(templates: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(templates).map(([name, t]) => {
      const template = (t ?? {}) as Record<string, unknown>;
      const passEnv = Array.isArray(template.passEnv) ? (template.passEnv as unknown[]) : [];
      return [name, { ...template, passEnv: [...passEnv, 'DROVER_E2E_DIR'] }];
    }),
  );
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
    srv.on('error', reject);
  });
}

export interface GroupRow {
  tenant: string;
  group: string;
  size: number;
  inService: number;
  pending: number;
  draining: number;
  unhealthy: number;
  live: number;
}

export interface InstanceRow {
  id: string;
  providerId: string | null;
  tenant: string;
  group: string;
  status: string;
  healthAt: string | null;
  drainReason: string | null;
  drainDeadline: string | null;
  replaces: string | null;
  createReason: string;
  connected: boolean;
}

/** The servers' health interval and missed-report threshold here: tests derive their waits and bounds from them. */
export const E2E_HEALTH_INTERVAL_MS = 1_000;
export const E2E_MISSED_HEALTH_THRESHOLD = 3;

export class ProcessServer {
  readonly dir: string;
  readonly configPath: string;
  readonly stateDir: string;
  port = 0;
  proc: ChildProcess | undefined;
  output = '';
  private config: Record<string, unknown> = {};
  /** Every answer `api()` gets is checked against the document the server serves (openapi-check.ts). */
  private checker: Promise<OpenApiChecker> | null = null;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'drover-e2e-'));
    this.configPath = join(this.dir, 'drover.yaml');
    this.stateDir = join(this.dir, 'data', 'local');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async writeConfig(
    groups: Record<string, Record<string, Record<string, unknown>>>,
    extra: { templates?: Record<string, unknown>; shard?: Record<string, unknown>; token?: string; notifications?: Array<Record<string, unknown>> } = {},
  ): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    this.config = {
      server: { listen: `127.0.0.1:${this.port}`, dataDir: join(this.dir, 'data'), ...(extra.token ? { token: extra.token } : {}) },
      provider: { kind: 'local', killGracePeriod: '2s' },
      shard: { id: 'e2e', healthCheckInterval: `${E2E_HEALTH_INTERVAL_MS}ms`, missedHealthThreshold: E2E_MISSED_HEALTH_THRESHOLD, startupTimeout: '30s', defaultDrainTimeout: '10s', ...extra.shard },
      templates: findableTemplates(
        extra.templates ?? {
          web: { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'] },
        },
      ),
      groups,
      ...(extra.notifications ? { notifications: extra.notifications } : {}),
    };
    writeFileSync(this.configPath, stringify(this.config));
  }

  writeRaw(text: string): void {
    writeFileSync(this.configPath, text);
  }

  /** Starts `drover server` and waits for /healthz. */
  async start(env: Record<string, string> = {}): Promise<void> {
    this.checker = null;
    this.proc = spawn(process.execPath, [CLI, 'server', '--config', this.configPath], {
      // Instance processes get DROVER_E2E_DIR (findableTemplates), so a test finds every process it caused.
      env: { ...process.env, DROVER_LOG_LEVEL: 'info', DROVER_E2E_DIR: this.dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.proc.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`server exited (${this.proc.exitCode}):\n${this.output}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`server did not come up:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** kill -9 the server. */
  async kill9(): Promise<void> {
    await killAndWait(this.proc, 'SIGKILL');
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  }

  async api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const answer = (text ? JSON.parse(text) : null) as T;
    this.checker ??= OpenApiChecker.fetch(this.url).catch((err: unknown) => {
      this.checker = null;
      throw err;
    });
    (await this.checker).assertAnswer(method, path, res.status, res.headers.get('content-type'), answer);
    return { status: res.status, body: answer };
  }

  async groups(): Promise<GroupRow[]> {
    return (await this.api<GroupRow[]>('GET', '/v1/groups')).body;
  }

  async group(tenant: string, group: string): Promise<GroupRow | undefined> {
    return (await this.groups()).find((g) => g.tenant === tenant && g.group === group);
  }

  async instances(tenant = 'default', group = 'web'): Promise<InstanceRow[]> {
    return (await this.api<InstanceRow[]>('GET', `/v1/instances?tenant=${tenant}&group=${group}`)).body;
  }

  /** Runs the CLI against this server; returns exit code and output. */
  cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
    const res = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, DROVER_SERVER: this.url, ...env }, encoding: 'utf8', timeout: 60_000 });
    return { status: res.status, stdout: res.stdout, stderr: res.stderr };
  }

  /** Pid of an instance's root process (its process group), from the local provider's files. */
  pidOf(instanceId: string): number | null {
    for (const file of ['agent.pid', 'meta.json']) {
      const path = join(this.stateDir, instanceId, file);
      if (!existsSync(path)) continue;
      const text = readFileSync(path, 'utf8');
      const pid = file === 'agent.pid' ? Number(text.trim()) : Number((JSON.parse(text) as { pid?: number }).pid);
      if (Number.isInteger(pid) && pid > 0) return pid;
    }
    return null;
  }

  /** Pids of live processes whose environment carries DROVER_INSTANCE_ID for this test's instances. */
  instanceProcesses(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    const ours = new Set(existsSync(this.stateDir) ? readdirSync(this.stateDir) : []);
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let env: string;
      try {
        env = readFileSync(`/proc/${entry}/environ`, 'utf8');
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (/\) Z /.test(stat)) continue; // zombie
      } catch {
        continue;
      }
      const match = /(?:^|\0)DROVER_INSTANCE_ID=([^\0]+)/.exec(env);
      if (!match?.[1]) continue;
      const dataDir = /(?:^|\0)DROVER_E2E_DIR=([^\0]+)/.exec(env)?.[1];
      if (dataDir !== this.dir && !ours.has(match[1])) continue;
      const list = out.get(match[1]) ?? [];
      list.push(Number(entry));
      out.set(match[1], list);
    }
    return out;
  }

  /** Kills every instance process of this test and the server; removes the temp dir. */
  async cleanup(): Promise<void> {
    await this.kill9();
    for (const pids of this.instanceProcesses().values()) {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Sends `signal` to a child still running and waits for it to exit. */
export async function killAndWait(proc: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill(signal);
  await exited;
}

/** Polls `fn` until `check` accepts its value; fails with the last value after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T> | T, check: (v: T) => boolean, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await fn();
      if (check(last)) return last;
    } catch (err) {
      last = undefined;
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
