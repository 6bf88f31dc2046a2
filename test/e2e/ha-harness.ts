/**
 * HA end-to-end harness: a real 3-member etcd cluster and N `drover server` processes (the
 * built CLI) of one shard, each with its own data folder and SQLite, sharing one local-provider
 * state folder (one "cloud") and one agent secret. Instances are real processes running
 * `drover agent`. Everything listens on 127.0.0.1; `cleanup()` kills every process it caused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { EtcdCluster } from '../helpers/etcd-cluster.js';
import { OpenApiChecker } from '../helpers/openapi-check.js';
import { CLI, findableTemplates, freePort } from './process-harness.js';

export interface LogLine {
  time: number;
  msg: string;
  [field: string]: unknown;
}

export class Replica {
  proc: ChildProcess | undefined;
  /** Everything the process printed, across restarts. */
  output = '';
  stopped = false;

  constructor(
    readonly index: number,
    readonly port: number,
    readonly configPath: string,
    readonly dataDir: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Parsed JSON log lines (optionally only those printed after output offset `from`). */
  lines(from = 0): LogLine[] {
    const out: LogLine[] = [];
    for (const text of this.output.slice(from).split('\n')) {
      if (!text.startsWith('{')) continue;
      try {
        out.push(JSON.parse(text) as LogLine);
      } catch {
        // a line cut by kill -9
      }
    }
    return out;
  }
}

/** The local provider's SIGTERM → SIGKILL grace in the replicas' config: a delete may take that long. */
export const HA_KILL_GRACE_MS = 2_000;

export interface HaOptions {
  replicas?: number;
  ttl?: string;
  groups: Record<string, Record<string, Record<string, unknown>>>;
  shard?: Record<string, unknown>;
  templates?: Record<string, unknown>;
}

export interface LiveInstance {
  id: string;
  tenant: string;
  group: string;
  drainDeadline: string | null;
}

export class HaCluster {
  readonly dir: string;
  readonly stateDir: string;
  readonly replicas: Replica[] = [];
  etcd!: EtcdCluster;
  private readonly secret = 'e2e-shared-agent-secret-0123456789abcdef';
  private checker: Promise<OpenApiChecker> | null = null;

  private constructor(private readonly options: HaOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'drover-ha-'));
    this.stateDir = join(this.dir, 'cloud');
  }

  static async start(options: HaOptions): Promise<HaCluster> {
    const c = new HaCluster(options);
    try {
      c.etcd = await EtcdCluster.start(3);
      const ports: number[] = [];
      for (let i = 0; i < (options.replicas ?? 3); i++) ports.push(await freePort());
      for (let i = 0; i < ports.length; i++) {
        const dataDir = join(c.dir, `replica-${i}`);
        mkdirSync(dataDir, { recursive: true });
        c.replicas.push(new Replica(i, ports[i]!, join(c.dir, `replica-${i}.yaml`), dataDir));
      }
      c.writeConfigs(options.groups);
      for (let i = 0; i < c.replicas.length; i++) await c.start(i);
    } catch (err) {
      await c.cleanup();
      throw err;
    }
    return c;
  }

  /** Writes every replica's config (same shard, groups and etcd; own listen, advertise, data). */
  writeConfigs(groups: HaOptions['groups']): void {
    const all = this.replicas.map((r) => r.url);
    for (const r of this.replicas) {
      const config = {
        server: { listen: `127.0.0.1:${r.port}`, dataDir: r.dataDir, advertise: r.url, replicas: all },
        provider: { kind: 'local', stateDir: this.stateDir, killGracePeriod: `${HA_KILL_GRACE_MS}ms` },
        leader: { kind: 'etcd', endpoints: this.etcd.endpoints, ttl: this.options.ttl ?? '2s' },
        shard: { id: 'ha', healthCheckInterval: '1s', missedHealthThreshold: 5, startupTimeout: '30s', defaultDrainTimeout: '5s', ...this.options.shard },
        templates: findableTemplates(this.options.templates ?? { web: { command: ['sleep', '100000'] } }),
        groups,
      };
      writeFileSync(r.configPath, stringify(config));
    }
  }

  /** Starts replica `i` and waits until its API answers. */
  async start(i: number): Promise<void> {
    const r = this.replica(i);
    if (r.running) return;
    const proc = spawn(process.execPath, [CLI, 'server', '--config', r.configPath], {
      env: { ...process.env, DROVER_LOG_LEVEL: 'info', DROVER_E2E_DIR: this.dir, DROVER_AGENT_SECRET: this.secret },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    r.proc = proc;
    r.stopped = false;
    proc.stdout?.on('data', (d: Buffer) => (r.output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (r.output += d.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`replica ${i} exited (${proc.exitCode}):\n${r.output.slice(-5_000)}`);
      if ((await this.healthz(i)) !== null) return;
      if (Date.now() > deadline) throw new Error(`replica ${i} did not come up:\n${r.output.slice(-5_000)}`);
      await sleep(100);
    }
  }

  async kill9(i: number): Promise<void> {
    const r = this.replica(i);
    const proc = r.proc;
    if (!proc || !r.running) return;
    const exited = new Promise((res) => proc.once('exit', res));
    proc.kill('SIGKILL');
    await exited;
  }

  sigstop(i: number): void {
    this.replica(i).proc?.kill('SIGSTOP');
    this.replica(i).stopped = true;
  }

  sigcont(i: number): void {
    this.replica(i).proc?.kill('SIGCONT');
    this.replica(i).stopped = false;
  }

  /** /healthz of replica `i`, or null when it does not answer within a second. */
  async healthz(i: number): Promise<{ leader: boolean } | null> {
    const r = this.replica(i);
    if (!r.running || r.stopped) return null;
    try {
      const res = await fetch(`${r.url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      return res.ok ? ((await res.json()) as { leader: boolean }) : null;
    } catch {
      return null;
    }
  }

  /** Indexes of the replicas that say they lead. */
  async leaders(): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < this.replicas.length; i++) if ((await this.healthz(i))?.leader) out.push(i);
    return out;
  }

  /** Waits until exactly one replica leads; returns it. */
  async waitLeader(timeoutMs = 15_000, except?: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leaders = (await this.leaders()).filter((i) => i !== except);
      if (leaders.length === 1) return leaders[0]!;
      if (Date.now() > deadline) throw new Error(`no single leader after ${timeoutMs} ms (leaders: ${JSON.stringify(leaders)})`);
      await sleep(50);
    }
  }

  /** A JSON API call on replica `i` (fetch follows a follower's 307 to the leader). */
  async api<T>(i: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.replica(i).url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    const answer = (text ? JSON.parse(text) : null) as T;
    // Every answer is checked against the OpenAPI document (the replicas serve the same one).
    this.checker ??= OpenApiChecker.fetch(this.replica(i).url).catch((err: unknown) => {
      this.checker = null;
      throw err;
    });
    (await this.checker).assertAnswer(method, path, res.status, res.headers.get('content-type'), answer);
    return { status: res.status, body: answer };
  }

  /** Instances whose process is alive, read from the shared state folder (the "cloud"). */
  liveInstances(): LiveInstance[] {
    const out: LiveInstance[] = [];
    if (!existsSync(this.stateDir)) return out;
    for (const id of readdirSync(this.stateDir)) {
      let meta: { pid?: number; startTime?: string; tags?: Record<string, string> };
      try {
        meta = JSON.parse(readFileSync(join(this.stateDir, id, 'meta.json'), 'utf8')) as typeof meta;
      } catch {
        continue;
      }
      if (meta.pid === undefined || !processAlive(meta.pid, meta.startTime)) continue;
      const tags = meta.tags ?? {};
      out.push({ id, tenant: tags['drover:tenant'] ?? '', group: tags['drover:group'] ?? '', drainDeadline: tags['drover:drain-deadline'] || null });
    }
    return out;
  }

  /**
   * Agent processes per instance id, for this test's instances: pid and command line. A child
   * the agent is forking (a workload between fork and exec) looks like the agent for a moment;
   * processes whose parent is an agent of the same instance are not counted.
   */
  agentsPerInstance(): Map<string, string[]> {
    const found: Array<{ pid: number; ppid: number; id: string; cmdline: string }> = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let env: string;
      let cmdline: string;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        env = readFileSync(`/proc/${entry}/environ`, 'utf8');
        cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      if (!env.split('\0').includes(`DROVER_E2E_DIR=${this.dir}`)) continue;
      const id = /(?:^|\0)DROVER_INSTANCE_ID=([^\0]+)/.exec(env)?.[1];
      if (!id || !cmdline.split('\0').includes('agent')) continue;
      found.push({ pid: Number(entry), ppid: Number(fields[1]), id, cmdline: cmdline.split('\0').join(' ') });
    }
    const out = new Map<string, string[]>();
    for (const p of found) {
      if (found.some((q) => q.pid === p.ppid && q.id === p.id)) continue;
      out.set(p.id, [...(out.get(p.id) ?? []), `${p.pid}: ${p.cmdline}`]);
    }
    return out;
  }

  /** Kills every replica, every instance process of this test and etcd; removes the folder. */
  async cleanup(): Promise<void> {
    // DROVER_E2E_KEEP_LOGS=<dir>: keep each replica's log there (for a failure's post-mortem).
    const keep = process.env.DROVER_E2E_KEEP_LOGS;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const r of this.replicas) writeFileSync(join(keep, `replica-${r.index}.log`), r.output);
    }
    for (const r of this.replicas) {
      if (r.stopped) r.proc?.kill('SIGCONT');
      if (r.running) {
        const proc = r.proc!;
        const exited = new Promise((res) => proc.once('exit', res));
        proc.kill('SIGKILL');
        await exited;
      }
    }
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const env = readFileSync(`/proc/${entry}/environ`, 'utf8');
        if (env.split('\0').includes(`DROVER_E2E_DIR=${this.dir}`)) process.kill(Number(entry), 'SIGKILL');
      } catch {
        // gone, or not ours to read
      }
    }
    this.etcd?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  replica(i: number): Replica {
    const r = this.replicas[i];
    if (!r) throw new Error(`no replica ${i}`);
    return r;
  }
}

function processAlive(pid: number, startTime: string | undefined): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return false;
    return startTime === undefined || rest[19] === startTime;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
