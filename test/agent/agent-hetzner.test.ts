/**
 * An agent as it runs on a Hetzner Cloud server, against a real Drover server whose (simulated)
 * cloud wants bootstrap tokens and hands out numeric server ids, with a fake Hetzner metadata
 * service on loopback: it exchanges the token from its user data for its credential, proving the
 * machine by its server id, keeps the credential for its restarts, and polls no notices.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_BOOTSTRAP_REFUSED, runAgent, type Agent } from '../../src/agent/agent.js';
import { agentConfigSchema, type AgentConfig } from '../../src/agent/config.js';
import { SystemClock } from '../../src/clock/index.js';
import type { InstanceRecord } from '../../src/store/index.js';
import { TestServer } from '../helpers/server-harness.js';
import { TokenCloud } from '../helpers/token-cloud.js';
import { FakeHetznerMetadata } from './fake-hetzner-metadata.js';
import { TestLogger } from './harness.js';

let dir: string;
let md: FakeHetznerMetadata;
let t: TestServer;
let cloud: TokenCloud;
const agents: Agent[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drover-agent-hetzner-'));
  md = new FakeHetznerMetadata();
  await md.listen();
  // Hetzner Cloud's server ids are numbers: the simulated cloud hands out 4711000001, ...
  cloud = new TokenCloud({ clock: new SystemClock(), seed: 5, idPrefix: '4711' });
  t = await new TestServer({ provider: cloud, groups: { default: { web: { size: 1, template: 'web' } } }, shard: { healthCheckInterval: '1s', startupTimeout: '2h' } }).start();
  await t.settle();
});

afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop('test over');
  await t.close();
  await md.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The instance, and the agent config its user data makes (as cloud-init would write it), the
 * metadata service answering `serverId` (default: the instance's own provider id).
 */
function instanceAndConfig(serverId?: string): { inst: InstanceRecord; cfg: AgentConfig } {
  const [inst] = t.server.db.listInstances();
  const userData = cloud.userData.get(inst!.id)![0]!;
  md.machine(inst!.id, { instanceId: `${serverId ?? inst!.providerId!}\n` });
  const cfg = agentConfigSchema.parse({
    instanceId: userData.DROVER_INSTANCE_ID,
    servers: userData.DROVER_SERVER!.split(','),
    bootstrapToken: userData.DROVER_BOOTSTRAP_TOKEN,
    credentialFile: join(dir, 'state', 'credential'),
    metadata: 'hetzner',
    hetznerMetadata: { endpoint: md.url(inst!.id) },
    healthCheckIntervalMs: 1_000,
  });
  return { inst: inst!, cfg };
}

function start(cfg: AgentConfig, log = new TestLogger()): Agent {
  const agent = runAgent(cfg, { logger: log, reconnectInitialMs: 20, reconnectMaxMs: 200, noticePollMs: 20, rebalancePollMs: 20, bootstrapRetryInitialMs: 20, bootstrapRetryMaxMs: 200, keepAlive: false });
  agents.push(agent);
  return agent;
}

describe('agent on Hetzner Cloud', () => {
  it('exchanges its bootstrap token for its credential with its numeric server id, reports health, polls no notices, and after a restart uses the saved credential', async () => {
    const { inst, cfg } = instanceAndConfig();
    expect(inst.providerId).toMatch(/^4711\d{6}$/);
    const first = start(cfg);
    await expect.poll(() => t.server.db.getInstance(inst.id)?.healthAt, { timeout: 10_000 }).not.toBeNull();
    const file = cfg.credentialFile!;
    expect(readFileSync(file, 'utf8').trim()).toBe(t.credential(inst.id));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const audit = t.server.db.listAudit({ instanceId: inst.id }).filter((a) => a.action === 'agentBootstrap');
    expect(audit).toHaveLength(1);
    expect(audit[0]!.detail).toContain(inst.providerId!);
    // One read of the server id, and nothing else: Hetzner has no notices to poll (the agent's
    // notice poll is 20 ms here, and health has been reported since).
    expect(md.requests).toEqual([{ method: 'GET', key: inst.id, path: '/hetzner/v1/metadata/instance-id' }]);

    await first.stop('restart');
    agents.splice(agents.indexOf(first), 1);
    const healthBefore = t.server.db.getInstance(inst.id)!.healthAt!.getTime();
    start(cfg);
    await expect.poll(() => t.server.db.getInstance(inst.id)!.healthAt!.getTime(), { timeout: 10_000 }).toBeGreaterThan(healthBefore);
    // The saved credential was used: the spent token was not presented again, the metadata not read again.
    expect(t.server.db.listAudit({ instanceId: inst.id }).map((a) => a.action).filter((a) => a.startsWith('agentBootstrap'))).toEqual(['agentBootstrap']);
    expect(md.requests).toHaveLength(1);
  });

  it('is refused (403) when its metadata gives another server\'s id: exit code 4, no credential, never connects', async () => {
    const { inst, cfg } = instanceAndConfig('4711999999');
    expect(inst.providerId).not.toBe('4711999999');
    const log = new TestLogger();
    const agent = start(cfg, log);
    const exit = await agent.done;
    expect(exit.exitCode).toBe(EXIT_BOOTSTRAP_REFUSED);
    expect(exit.reason).toMatch(/HTTP 403/);
    expect(exit.reason).toContain('4711999999');
    expect(log.lines.find((l) => l.msg === 'bootstrap refused: the agent cannot get its credential')?.level).toBe('error');
    expect(existsSync(cfg.credentialFile!)).toBe(false);
    expect(t.server.db.getInstance(inst.id)?.healthAt).toBeNull();
    expect(t.server.db.listAudit({ instanceId: inst.id }).map((a) => a.action)).toContain('agentBootstrapRefused');
  });
});
