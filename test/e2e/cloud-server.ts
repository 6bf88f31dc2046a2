/**
 * A `drover server` process for a cloud provider's end-to-end test (kind aws or hetzner, pointed
 * at a fake of the cloud's API): one group `default/web` of agents whose workload sleeps and whose
 * drain command acknowledges at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { agentConfigFromUserData } from '../../src/providers/cloud-init/index.js';
import { OpenApiChecker } from '../helpers/openapi-check.js';
import { CLI, freePort, killAndWait, waitFor, type InstanceRow } from './process-harness.js';

export const HEALTH_MS = 1_000;

export interface CloudServerOptions {
  /** The config's `provider` section. */
  provider: Record<string, unknown>;
  /** The `web` template's launch settings (the agent's commands are added). */
  template: Record<string, unknown>;
  /** The server's environment beside the test's (credentials). */
  env: Record<string, string>;
}

export class CloudServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'drover-cloud-server-'));
  readonly configPath = join(this.dir, 'drover.yaml');
  port = 0;
  proc: ChildProcess | undefined;
  output = '';
  /** Every answer is checked against the OpenAPI document the server serves. */
  private checker: OpenApiChecker | null = null;

  constructor(private readonly options: CloudServerOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async writeConfig(size: number): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const config = {
      server: { listen: `127.0.0.1:${this.port}`, dataDir: join(this.dir, 'data') },
      provider: this.options.provider,
      shard: { id: 'e2e', healthCheckInterval: `${HEALTH_MS}ms`, missedHealthThreshold: 3, startupTimeout: '60s', defaultDrainTimeout: '20s', defaultNoticeWindow: '2m' },
      templates: { web: { ...this.options.template, command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], drainCommand: ['node', '-e', '0'] } },
      groups: { default: { web: { size, template: 'web' } } },
    };
    writeFileSync(this.configPath, stringify(config));
  }

  async start(): Promise<void> {
    this.output = '';
    this.proc = spawn(process.execPath, [CLI, 'server', '--config', this.configPath], {
      env: {
        ...process.env,
        DROVER_LOG_LEVEL: 'info',
        ...this.options.env,
        // Survives a lost data folder, as a shared secret in HA does (agents keep their credentials).
        DROVER_AGENT_SECRET: 'e2e-agent-secret-0123456789abcdef',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.proc.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    await waitFor(
      'the server to answer /healthz',
      async () => {
        if (this.proc?.exitCode !== null) throw new Error(`server exited:\n${this.output}`);
        return fetch(`${this.url}/healthz`).then((r) => r.ok, () => false);
      },
      (ok) => ok,
      20_000,
      100,
    );
  }

  async kill9(): Promise<void> {
    await killAndWait(this.proc, 'SIGKILL');
  }

  async instances(): Promise<InstanceRow[]> {
    const path = '/v1/instances?tenant=default&group=web';
    const res = await fetch(`${this.url}${path}`);
    const body = (await res.json()) as InstanceRow[];
    this.checker ??= await OpenApiChecker.fetch(this.url);
    this.checker.assertAnswer('GET', path, res.status, res.headers.get('content-type'), body);
    return body;
  }

  async healthy(): Promise<InstanceRow[]> {
    return (await this.instances()).filter((i) => i.status === 'running' && i.healthAt !== null && i.connected);
  }

  async close(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * What cloud-init does on a fake cloud's new machine: the agent config from its user data, with
 * this machine's paths and metadata endpoint (`overrides`), written to `<dir>/<machine>/agent.json`
 * and `drover agent` started on it. Its output is appended to `log`.
 */
export function bootAgent(dir: string, machine: string, userData: string, overrides: Record<string, unknown>, log: { text: string }): ChildProcess {
  const home = join(dir, machine);
  mkdirSync(home, { recursive: true });
  const config = { ...agentConfigFromUserData(userData), credentialFile: join(home, 'credential'), selfSocket: join(home, 'agent.sock'), ...overrides };
  const path = join(home, 'agent.json');
  writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
  const proc = spawn(process.execPath, [CLI, 'agent', '--config', path], { env: { ...process.env, DROVER_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.on('data', (d: Buffer) => (log.text += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log.text += d.toString()));
  return proc;
}
