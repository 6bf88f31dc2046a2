/**
 * An agent as it runs on an EC2 instance, against a real Drover server whose (simulated) cloud
 * wants bootstrap tokens, with a fake IMDS on loopback: it exchanges the token from its user data
 * for its credential, keeps it for its restarts, and passes on what IMDS says.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_BOOTSTRAP_REFUSED, runAgent, type Agent } from '../../src/agent/agent.js';
import { agentConfigSchema, type AgentConfig } from '../../src/agent/config.js';
import { SystemClock } from '../../src/clock/index.js';
import type { InstanceRecord } from '../../src/store/index.js';
import { EventStreamReader } from '../helpers/event-stream.js';
import { TestServer } from '../helpers/server-harness.js';
import { TokenCloud } from '../helpers/token-cloud.js';
import { FakeImds } from './fake-imds.js';
import { TestLogger } from './harness.js';

let dir: string;
let imds: FakeImds;
let t: TestServer;
let cloud: TokenCloud;
const agents: Agent[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drover-agent-ec2-'));
  imds = new FakeImds();
  await imds.listen();
  cloud = new TokenCloud({ clock: new SystemClock(), seed: 5 });
  t = await new TestServer({ provider: cloud, groups: { default: { web: { size: 1, template: 'web' } } }, shard: { healthCheckInterval: '1s', startupTimeout: '2h' } }).start();
  await t.settle();
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop('test over');
  await t.close();
  await imds.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The instance, and the agent config its user data makes (as cloud-init would write it). */
function instanceAndConfig(): { inst: InstanceRecord; cfg: AgentConfig } {
  const [inst] = t.server.db.listInstances();
  const userData = cloud.userData.get(inst!.id)![0]!;
  imds.machine(inst!.id, { instanceId: inst!.providerId! });
  const cfg = agentConfigSchema.parse({
    instanceId: userData.DROVER_INSTANCE_ID,
    servers: userData.DROVER_SERVER!.split(','),
    bootstrapToken: userData.DROVER_BOOTSTRAP_TOKEN,
    credentialFile: join(dir, 'state', 'credential'),
    metadata: 'ec2',
    imds: { endpoint: imds.url(inst!.id) },
    healthCheckIntervalMs: 1_000,
  });
  return { inst: inst!, cfg };
}

function start(cfg: AgentConfig, log = new TestLogger()): Agent {
  const agent = runAgent(cfg, { logger: log, reconnectInitialMs: 20, reconnectMaxMs: 200, noticePollMs: 20, rebalancePollMs: 20, bootstrapRetryInitialMs: 20, bootstrapRetryMaxMs: 200, keepAlive: false });
  agents.push(agent);
  return agent;
}

describe('agent on EC2', () => {
  it('exchanges its bootstrap token for its credential, reports health, and after a restart uses the saved credential', async () => {
    const { inst, cfg } = instanceAndConfig();
    const first = start(cfg);
    await expect.poll(() => t.server.db.getInstance(inst.id)?.healthAt, { timeout: 10_000 }).not.toBeNull();
    const file = cfg.credentialFile!;
    expect(readFileSync(file, 'utf8').trim()).toBe(t.credential(inst.id));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(t.server.db.listAudit({ instanceId: inst.id }).filter((a) => a.action === 'agentBootstrap')).toHaveLength(1);

    await first.stop('restart');
    agents.splice(agents.indexOf(first), 1);
    const healthBefore = t.server.db.getInstance(inst.id)!.healthAt!.getTime();
    start(cfg);
    await expect.poll(() => t.server.db.getInstance(inst.id)!.healthAt!.getTime(), { timeout: 10_000 }).toBeGreaterThan(healthBefore);
    // The spent token was not presented again.
    expect(t.server.db.listAudit({ instanceId: inst.id }).map((a) => a.action).filter((a) => a.startsWith('agentBootstrap'))).toEqual(['agentBootstrap']);
  });

  it('passes a spot interruption on as a termination notice, and a rebalance recommendation as a rebalance event', async () => {
    const { inst, cfg } = instanceAndConfig();
    const stream = await EventStreamReader.open(`${t.url}/v1/events`);
    try {
      start(cfg);
      await expect.poll(() => t.server.db.getInstance(inst.id)?.healthAt, { timeout: 10_000 }).not.toBeNull();
      const machine = imds.machine(inst.id, { instanceId: inst.providerId! });
      const terminateAt = new Date(Date.now() + 120_000);
      machine.rebalance = JSON.stringify({ noticeTime: '2026-03-01T10:00:00Z' });
      machine.spotAction = JSON.stringify({ action: 'terminate', time: terminateAt.toISOString().replace(/\.\d{3}Z$/, 'Z') });
      const rebalance = await stream.next((e) => e.type === 'rebalance');
      expect(rebalance.data).toMatchObject({ instanceId: inst.id, noticeTime: '2026-03-01T10:00:00.000Z' });
      await expect.poll(() => t.server.db.getInstance(inst.id)?.noticeDeadline?.getTime(), { timeout: 10_000 }).toBe(Math.floor(terminateAt.getTime() / 1000) * 1000);
    } finally {
      await stream.close();
    }
  });

  it('ends with exit code 4 when the server refuses its token, and never connects', async () => {
    const { inst, cfg } = instanceAndConfig();
    const log = new TestLogger();
    const agent = start({ ...cfg, bootstrapToken: 'not-the-token-0123456789abcdefghijkl' }, log);
    const exit = await agent.done;
    expect(exit.exitCode).toBe(EXIT_BOOTSTRAP_REFUSED);
    expect(exit.reason).toMatch(/HTTP 401/);
    expect(log.lines.find((l) => l.msg === 'bootstrap refused: the agent cannot get its credential')?.level).toBe('error');
    expect(t.server.db.getInstance(inst.id)?.healthAt).toBeNull();
  });
});
