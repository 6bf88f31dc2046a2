/**
 * A real etcd cluster for tests: N members on loopback ports in a temporary folder, started
 * from the `etcd` binary on the PATH (Debian's etcd-server). Members can be killed, restarted,
 * and the whole cluster restarted on the same data. `close()` kills every member and removes
 * the folder.
 *
 * With `tls`, clients reach the members over https with the given server certificate (and must
 * present a certificate from the CA with `clientCertAuth`); the helper's own health checks verify
 * the members against that CA. Peers still talk plain http among themselves (loopback).
 *
 * Without etcd, `describeWithEtcd` skips its tests with a warning, or fails them with
 * DROVER_REQUIRE_TOOLS=1 (test/helpers/tools.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../e2e/process-harness.js';
import { describeWithTool, ETCD_TOOL, findTool, type SuiteArgs } from './tools.js';

/** Path of the etcd binary, or null when there is none. */
export const ETCD = findTool(ETCD_TOOL);

/** `describe` that needs etcd: run; failed with DROVER_REQUIRE_TOOLS=1 when etcd is missing; else skipped with a warning. */
export function describeWithEtcd(name: string, ...args: SuiteArgs): void {
  describeWithTool(ETCD_TOOL, name, ...args);
}

export { freePort };

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  proc: ChildProcess | undefined;
  output: string;
}

export interface EtcdClusterOptions {
  /** Serve clients over TLS with this CA's server certificate (PEM file paths). */
  tls?: {
    ca: string;
    cert: string;
    key: string;
    /** etcd's --client-cert-auth: clients must present a certificate the CA signed (the helper presents `cert`). */
    clientCertAuth?: boolean;
  };
}

export class EtcdCluster {
  readonly dir: string;
  private readonly members: Member[] = [];
  private readonly options: EtcdClusterOptions;

  private constructor(size: number, options: EtcdClusterOptions) {
    this.options = options;
    this.dir = mkdtempSync(join(tmpdir(), 'drover-etcd-'));
    for (let i = 0; i < size; i++) {
      this.members.push({ name: `m${i}`, clientPort: 0, peerPort: 0, dataDir: join(this.dir, `m${i}`), proc: undefined, output: '' });
    }
  }

  /** Starts a new cluster of `size` members and waits until it has a leader. */
  static async start(size = 3, options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    if (!ETCD) throw new Error('etcd is not on the PATH');
    const cluster = new EtcdCluster(size, options);
    for (const m of cluster.members) {
      m.clientPort = await freePort();
      m.peerPort = await freePort();
    }
    try {
      for (let i = 0; i < size; i++) cluster.spawn(i);
      await cluster.waitHealthy();
    } catch (err) {
      cluster.close();
      throw err;
    }
    return cluster;
  }

  get size(): number {
    return this.members.length;
  }

  /** Client URLs of every member. */
  get endpoints(): string[] {
    return this.members.map((_, i) => this.endpoint(i));
  }

  endpoint(i: number): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.member(i).clientPort}`;
  }

  isRunning(i: number): boolean {
    const p = this.member(i).proc;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  /** Kills member `i` (SIGKILL by default) and waits for it to exit. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.member(i);
    const proc = m.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
    m.proc = undefined;
  }

  /** Starts member `i` again on its data. */
  restart(i: number): void {
    if (this.isRunning(i)) return;
    this.spawn(i);
  }

  async killAll(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
  }

  restartAll(): void {
    for (let i = 0; i < this.members.length; i++) this.restart(i);
  }

  /** Index of the member that is the raft leader, or null when none is known. */
  async leaderIndex(): Promise<number | null> {
    for (let i = 0; i < this.members.length; i++) {
      if (!this.isRunning(i)) continue;
      try {
        const status = await this.status(i);
        if (!status.leader || status.leader === '0') continue;
        for (let j = 0; j < this.members.length; j++) {
          if (!this.isRunning(j)) continue;
          const other = await this.status(j).catch(() => null);
          if (other?.header.member_id === status.leader) return j;
        }
      } catch {
        // this member does not answer; ask the next
      }
    }
    return null;
  }

  /** Waits until every running member answers /health with true. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let healthy = true;
      for (let i = 0; i < this.members.length; i++) {
        if (!this.isRunning(i)) continue;
        try {
          const body = (await this.call(i, 'GET', '/health')) as { health?: string };
          if (body.health !== 'true') healthy = false;
        } catch {
          healthy = false;
        }
      }
      if (healthy) return;
      if (Date.now() > deadline) throw new Error(`etcd cluster not healthy after ${timeoutMs} ms:\n${this.members.map((m) => `--- ${m.name}\n${m.output.slice(-2_000)}`).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Kills every member and removes the folder. */
  close(): void {
    for (const m of this.members) {
      try {
        m.proc?.kill('SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private member(i: number): Member {
    const m = this.members[i];
    if (!m) throw new Error(`no etcd member ${i}`);
    return m;
  }

  private async status(i: number): Promise<{ header: { member_id: string }; leader: string }> {
    return (await this.call(i, 'POST', '/v3/maintenance/status', '{}')) as { header: { member_id: string }; leader: string };
  }

  /** One JSON call to member `i`'s gRPC gateway, verifying it against the CA under TLS. */
  private call(i: number, method: string, path: string, body?: string): Promise<unknown> {
    const url = new URL(path, this.endpoint(i));
    const tls = this.options.tls;
    const tlsOptions = tls ? { ca: readFileSync(tls.ca), ...(tls.clientCertAuth ? { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {}) } : {};
    return new Promise((resolve, reject) => {
      const req = (tls ? httpsRequest : httpRequest)(url, { method, timeout: 1_000, ...tlsOptions }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }

  private spawn(i: number): void {
    const m = this.member(i);
    const initialCluster = this.members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',');
    const tls = this.options.tls;
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', this.endpoint(i),
      '--advertise-client-urls', this.endpoint(i),
      ...(tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca] : []),
      ...(tls?.clientCertAuth ? ['--client-cert-auth'] : []),
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `drover-test-${this.dir}`,
      '--log-level', 'warn',
      '--logger', 'zap',
    ];
    const proc = spawn(ETCD ?? 'etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    m.output = '';
    const keep = (d: Buffer): void => {
      m.output = (m.output + d.toString()).slice(-20_000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    m.proc = proc;
  }
}
