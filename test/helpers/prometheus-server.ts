/**
 * A real Prometheus server for tests (Debian's `prometheus` on the PATH), on a loopback port with
 * its data in a temporary folder, scraping the targets it is given every second; and a tiny
 * exporter (a node HTTP server speaking the Prometheus text format) whose gauge the test sets.
 *
 * Without prometheus, `describeWithTool(PROMETHEUS_TOOL, ...)` skips the tests with a warning, or
 * fails them with DROVER_REQUIRE_TOOLS=1 (test/helpers/tools.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../e2e/process-harness.js';
import { findTool, PROMETHEUS_TOOL } from './tools.js';

/** An exporter of one gauge, `name`, whose value the test sets. */
export class GaugeExporter {
  value = 0;
  scrapes = 0;
  private readonly server: Server;

  private constructor(readonly name: string) {
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.scrapes++;
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
      res.end(`# HELP ${name} Load the test sets.\n# TYPE ${name} gauge\n${name} ${this.value}\n`);
    });
  }

  static async start(name: string): Promise<GaugeExporter> {
    const exporter = new GaugeExporter(name);
    await new Promise<void>((resolve) => exporter.server.listen(0, '127.0.0.1', resolve));
    return exporter;
  }

  /** host:port, as a scrape target. */
  get target(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export class PrometheusServer {
  private output = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    private proc: ChildProcess | undefined,
  ) {
    proc?.stdout?.on('data', (d: Buffer) => this.keep(d));
    proc?.stderr?.on('data', (d: Buffer) => this.keep(d));
  }

  /** Starts Prometheus scraping `targets` every second (job "web") and waits until it is ready. */
  static async start(targets: string[]): Promise<PrometheusServer> {
    const binary = findTool(PROMETHEUS_TOOL);
    if (!binary) throw new Error('prometheus is not on the PATH');
    const dir = mkdtempSync(join(tmpdir(), 'drover-prometheus-'));
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'scrape_configs:',
        '  - job_name: web',
        '    static_configs:',
        `      - targets: [${targets.map((t) => `"${t}"`).join(', ')}]`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    const proc = spawn(binary, [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new PrometheusServer(dir, port, proc);
    try {
      await server.waitReady();
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Waits until /-/ready answers 200. */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const proc = this.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) throw new Error(`prometheus exited:\n${this.output.slice(-2_000)}`);
      try {
        if ((await fetch(`${this.url}/-/ready`, { signal: AbortSignal.timeout(1_000) })).status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`prometheus not ready after ${timeoutMs} ms:\n${this.output.slice(-2_000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The value of an instant query (null: no sample), through the same HTTP API Drover uses. */
  async value(query: string): Promise<number | null> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query }).toString()}`);
    const body = (await res.json()) as { data?: { result?: Array<{ value: [number, string] }> } };
    const sample = body.data?.result?.[0];
    return sample ? Number(sample.value[1]) : null;
  }

  /** Kills it (SIGKILL) and waits for it to exit. */
  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private keep(d: Buffer): void {
    this.output = (this.output + d.toString('utf8')).slice(-20_000);
  }
}
