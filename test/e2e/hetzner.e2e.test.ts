/**
 * Drover on Hetzner Cloud, end to end, with no Hetzner: a real `drover server` (provider kind
 * hetzner, its fetch client) talks to the fake Hetzner Cloud API on loopback, with Hetzner's rate
 * limit shape (3,600 requests, one back a second); the fake "boots" each created server by
 * starting `drover agent` from the agent config in its cloud-init user data, against a fake
 * metadata service that answers that server's id. A group spread over three locations, a server
 * lost and replaced in its location, a server killed mid scale-up that creates no duplicate.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TOKEN, FakeHcloud, FakeHetznerMetadata, type FakeServer } from '../fakes/hetzner/index.js';
import { CloudServer, bootAgent } from './cloud-server.js';
import { requireBuild, waitFor } from './process-harness.js';

const LOCATIONS = ['fsn1', 'nbg1', 'hel1'];

class HetznerCloud {
  readonly dir = mkdtempSync(join(tmpdir(), 'drover-hetzner-e2e-'));
  readonly api: FakeHcloud;
  readonly metadata = new FakeHetznerMetadata();
  readonly agents = new Map<number, ChildProcess>();
  readonly agentLog = { text: '' };

  constructor() {
    this.api = new FakeHcloud({ actionMs: 1_000, deleteMs: 500, onCreate: (server) => this.boot(server), onDelete: (server) => this.shutdown(server.id) });
  }

  async start(): Promise<void> {
    await this.api.start();
    await this.metadata.start();
    this.api.setRateLimit({ limit: 3600, refillPerSecond: 1 });
  }

  private boot(server: FakeServer & { userData: string }): void {
    this.metadata.addServer(String(server.id), { hostname: server.name, location: server.location });
    this.agents.set(server.id, bootAgent(this.dir, String(server.id), server.userData, { hetznerMetadata: { endpoint: this.metadata.endpointFor(String(server.id)) } }, this.agentLog));
  }

  private shutdown(id: number): void {
    this.agents.get(id)?.kill('SIGTERM');
    this.agents.delete(id);
  }

  live(): FakeServer[] {
    return this.api.servers().filter((s) => s.status !== 'deleting');
  }

  async close(): Promise<void> {
    for (const proc of this.agents.values()) proc.kill('SIGKILL');
    this.agents.clear();
    await this.api.close();
    await this.metadata.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let cloud: HetznerCloud;
let server: CloudServer;

beforeAll(() => requireBuild());

afterEach(async (ctx) => {
  // What the server and the agents said, when it helps to understand a failure.
  if (ctx.task.result?.state === 'fail') console.log(`server:\n${server?.output.slice(-4000)}\nagents:\n${cloud?.agentLog.text.slice(-3000)}`);
  await server?.close();
  await cloud?.close();
});

async function setup(size: number): Promise<void> {
  cloud = new HetznerCloud();
  await cloud.start();
  server = new CloudServer({
    provider: { kind: 'hetzner', endpoint: cloud.api.endpoint },
    template: { image: 'ubuntu-24.04', serverTypes: ['cx32', 'cpx31'], locations: LOCATIONS },
    env: { HCLOUD_TOKEN: DEFAULT_TOKEN },
  });
  await server.writeConfig(size);
  await server.start();
}

describe('Drover on Hetzner Cloud (fake API and metadata, real agents)', () => {
  it('spreads a group over its locations, bootstraps its agents, and replaces a lost server in the location it left', async () => {
    await setup(3);
    await waitFor('3 healthy servers', () => server.healthy(), (rows) => rows.length === 3, 60_000);
    expect(cloud.live().map((s) => s.location).sort()).toEqual([...LOCATIONS].sort());
    expect(cloud.metadata.requests.some((r) => r.path.endsWith('/instance-id'))).toBe(true);
    // The names are the Drover instance ids; the labels carry Drover's tags.
    const rows = await server.instances();
    expect(cloud.live().map((s) => s.name).sort()).toEqual(rows.map((r) => r.id).sort());

    const lost = cloud.live().find((s) => s.location === 'nbg1')!;
    cloud.api.deleteExternally(lost.id);
    await waitFor('a replacement, healthy', () => server.healthy(), (r) => r.length === 3 && !r.some((i) => i.id === lost.name), 60_000);
    expect(cloud.live().map((s) => s.location).sort()).toEqual([...LOCATIONS].sort());
    // Slowed by the budget figures, never refused: no 429.
    expect(cloud.api.count('create_server', { code: 'rate_limit_exceeded' })).toBe(0);
  }, 150_000);

  it('creates no duplicate when the server is killed mid scale-up and restarted (the name is the idempotency key)', async () => {
    await setup(5);
    await waitFor('a first create', () => cloud.api.count('create_server'), (n) => n >= 2, 30_000, 20);
    await server.kill9();
    await server.start();
    await waitFor('5 healthy servers', () => server.healthy(), (rows) => rows.length === 5, 90_000);
    const names = cloud.api.servers().map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(cloud.live()).toHaveLength(5);
  }, 150_000);
});
