/**
 * Drover on EC2, end to end, with no AWS: a real `drover server` (provider kind aws, the real SDK)
 * talks to the fake EC2 Query API on loopback; the fake "boots" each launched instance by reading
 * the agent config out of its cloud-init user data and starting `drover agent` as a local process,
 * pointed at a fake IMDSv2 that answers for that instance. So the whole loop runs: server → SDK →
 * fake EC2 → agent exchanges its one-time token, reports health → a spot notice on the fake IMDS
 * → a replacement launched at once (it names the instance it replaces) while the old instance
 * drains (its drain command acknowledges) → terminated long before the notice's time.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeEc2, FakeImds, type FakeInstance } from '../fakes/ec2/index.js';
import { CloudServer, HEALTH_MS, bootAgent } from './cloud-server.js';
import { requireBuild, waitFor, type InstanceRow } from './process-harness.js';

const AMI = 'ami-0123456789abcdef0';

/** The "cloud": the fake EC2 and IMDS, and one agent process per running instance. */
class Cloud {
  readonly dir = mkdtempSync(join(tmpdir(), 'drover-ec2-e2e-'));
  readonly ec2: FakeEc2;
  readonly imds = new FakeImds();
  readonly agents = new Map<string, ChildProcess>();
  readonly agentLog = { text: '' };

  constructor() {
    this.ec2 = new FakeEc2({
      pendingMs: 500,
      knownImages: [AMI],
      onLaunch: (instance) => this.boot(instance),
      onTerminate: (instance) => this.shutdown(instance.instanceId),
    });
  }

  async start(): Promise<void> {
    await this.ec2.start();
    await this.imds.start();
  }

  /** What cloud-init would do: write the agent config from the user data and start the agent. */
  private boot(instance: FakeInstance & { userData: string }): void {
    this.imds.addInstance(instance.instanceId, { lifecycle: instance.market });
    this.agents.set(instance.instanceId, bootAgent(this.dir, instance.instanceId, instance.userData, { imds: { endpoint: this.imds.endpointFor(instance.instanceId) } }, this.agentLog));
  }

  /** The instance shuts down: its agent gets SIGTERM, as systemd sends it. */
  private shutdown(instanceId: string): void {
    this.agents.get(instanceId)?.kill('SIGTERM');
    this.agents.delete(instanceId);
  }

  live(): FakeInstance[] {
    return this.ec2.instances().filter((i) => i.state === 'pending' || i.state === 'running');
  }

  async close(): Promise<void> {
    for (const proc of this.agents.values()) proc.kill('SIGKILL');
    this.agents.clear();
    await this.ec2.close();
    await this.imds.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let cloud: Cloud;
let server: CloudServer;

beforeAll(() => requireBuild());

/** A `drover server` process with provider kind aws, pointed at the fake EC2. */
function ec2Server(c: Cloud): CloudServer {
  return new CloudServer({
    provider: { kind: 'aws', region: 'eu-central-1', endpoint: c.ec2.endpoint, notFoundGrace: '30s' },
    template: { imageId: AMI, instanceTypes: ['m7i.large', 'm6i.large'], capacity: 'spot-then-on-demand' },
    env: { AWS_ACCESS_KEY_ID: 'AKIDFAKEFAKEFAKEFAKE', AWS_SECRET_ACCESS_KEY: 'fake-secret-fake-secret' },
  });
}

afterEach(async () => {
  await server?.close();
  await cloud?.close();
});

async function setup(size: number): Promise<void> {
  cloud = new Cloud();
  await cloud.start();
  server = ec2Server(cloud);
  await server.writeConfig(size);
  await server.start();
}

describe('Drover on EC2 (fake EC2 and IMDS, real SDK, real agents)', () => {
  it('launches a group whose agents bootstrap from their user data, and answers a spot notice by launching a replacement at once while the old instance drains, acknowledges and is terminated before the notice\'s time', async () => {
    await setup(2);
    const ready = await waitFor('2 healthy instances', () => server.healthy(), (rows) => rows.length === 2, 60_000);
    // The agents proved their machines to the server with IMDSv2 and their one-time tokens.
    expect(cloud.imds.requests.some((r) => r.method === 'PUT' && r.path === '/latest/api/token')).toBe(true);
    expect(cloud.live()).toHaveLength(2);
    expect(new Set(cloud.live().map((i) => i.clientToken))).toEqual(new Set(ready.map((r) => r.id)));
    expect(cloud.live().every((i) => i.market === 'spot' && i.httpTokens === 'required')).toBe(true);

    const victim = ready[0]!;
    const noticeAt = Date.now();
    const terminateAt = new Date(noticeAt + 120_000);
    cloud.imds.setSpotAction(victim.providerId!, { action: 'terminate', time: terminateAt });

    // One poll watches both: when the replacement is first healthy, and when the old one is first gone.
    let replacement: InstanceRow | undefined;
    let replacementHealthyAt = 0;
    let goneAt = 0;
    await waitFor(
      'a healthy replacement and the noticed instance terminated',
      async () => {
        const now = Date.now();
        replacement ??= (await server.healthy()).find((r) => r.id !== ready[1]!.id && r.id !== victim.id);
        if (replacement && replacementHealthyAt === 0) replacementHealthyAt = now;
        const state = cloud.ec2.instance(victim.providerId!)?.state;
        if (goneAt === 0 && (state === 'shutting-down' || state === 'terminated')) goneAt = now;
        return replacementHealthyAt > 0 && goneAt > 0;
      },
      (done) => done,
      60_000,
      50,
    );
    expect(goneAt).toBeLessThan(terminateAt.getTime());
    // The agent acknowledged its drain (its drain command exited 0): deleted on the ack, not at the deadline.
    const audit = (await (await fetch(`${server.url}/v1/audit?instanceId=${victim.id}`)).json()) as Array<{ action: string; reason: string }>;
    expect(audit.map((a) => `${a.action}:${a.reason}`)).toEqual(expect.arrayContaining(['notice:terminationNotice', 'drain:terminationNotice', 'delete:drainAcked']));
    expect(cloud.live().map((i) => i.clientToken).sort()).toEqual([ready[1]!.id, replacement!.id].sort());
    expect(replacement!.replaces).toBe(victim.id);
    // The timeline, for the closing note (the test runner prints it).
    console.log(`spot notice timeline: notice → replacement healthy ${replacementHealthyAt - noticeAt} ms, → old instance terminated ${goneAt - noticeAt} ms (deadline 120000 ms)`);
  }, 150_000);

  it('rides out a throttling storm and a type with no spot capacity: every instance launched once, on the next type, with the fallback in the audit', async () => {
    cloud = new Cloud();
    await cloud.start();
    cloud.ec2.setCapacity('m7i.large', { spot: 0 });
    cloud.ec2.setBucket('RunInstances', { burst: 2, refillPerSecond: 2 });
    cloud.ec2.setBucket('DescribeInstances', { burst: 5, refillPerSecond: 5 });
    server = ec2Server(cloud);
    await server.writeConfig(8);
    await server.start();
    const rows = await waitFor('8 healthy instances', () => server.healthy(), (r) => r.length === 8, 90_000);
    const live = cloud.live();
    expect(live).toHaveLength(8);
    expect(new Set(cloud.ec2.instances().map((i) => i.clientToken)).size).toBe(cloud.ec2.instances().length);
    expect(live.every((i) => i.instanceType === 'm6i.large' && i.market === 'spot')).toBe(true);
    expect(cloud.ec2.count('RunInstances', { error: 'RequestLimitExceeded' })).toBeGreaterThan(0);
    console.log(`throttling storm: ${cloud.ec2.calls.length} EC2 calls, ${cloud.ec2.count('RunInstances')} RunInstances (${cloud.ec2.count('RunInstances', { error: 'InsufficientInstanceCapacity' })} without capacity), throttled: ${cloud.ec2.count('RunInstances', { error: 'RequestLimitExceeded' })} RunInstances, ${cloud.ec2.count('DescribeInstances', { error: 'RequestLimitExceeded' })} DescribeInstances`);
    const audit = (await (await fetch(`${server.url}/v1/audit?instanceId=${rows[0]!.id}`)).json()) as Array<{ action: string; detail: string | null }>;
    expect(audit.find((e) => e.action === 'created')?.detail).toMatch(/m6i\.large, spot; tried first: m7i\.large, spot: InsufficientInstanceCapacity/);
  }, 150_000);

  it('launches no duplicate when the server is killed mid scale-up and restarted, and adopts everything from tags after its database is lost', async () => {
    cloud = new Cloud();
    await cloud.start();
    // Launches trickle: one a second after a burst of 2 (RunInstances' own bucket).
    cloud.ec2.setBucket('RunInstances', { burst: 2, refillPerSecond: 1 });
    server = ec2Server(cloud);
    await server.writeConfig(6);
    await server.start();
    await waitFor('a few launches', () => cloud.ec2.count('RunInstances', { error: false }), (n) => n >= 3, 30_000, 50);
    await server.kill9();
    await server.start();
    await waitFor('6 healthy instances', () => server.healthy(), (rows) => rows.length === 6, 90_000);
    const tokens = cloud.ec2.instances().map((i) => i.clientToken);
    expect(new Set(tokens).size).toBe(tokens.length);
    expect(cloud.live()).toHaveLength(6);

    // Lose the database: a new server with an empty data folder lists, adopts, and launches nothing.
    await server.kill9();
    rmSync(join(server.dir, 'data'), { recursive: true, force: true });
    const launchesBefore = cloud.ec2.count('RunInstances', { error: false });
    await server.start();
    await waitFor('the 6 adopted instances to report again', () => server.healthy(), (rows) => rows.length === 6, 60_000);
    // Several health intervals after adoption: still nothing launched, nothing terminated.
    const settledAt = Date.now();
    await waitFor('3 health intervals', () => Date.now() - settledAt, (ms) => ms >= 3 * HEALTH_MS, 10_000, 100);
    expect(cloud.ec2.count('RunInstances', { error: false })).toBe(launchesBefore);
    expect(cloud.live()).toHaveLength(6);
    expect((await server.instances()).filter((i) => i.status === 'running')).toHaveLength(6);
  }, 240_000);
});
