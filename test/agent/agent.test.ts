import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { agentUrl, runAgent, type Agent, type AgentOptions } from '../../src/agent/agent.js';
import { agentConfigSchema, type AgentConfig } from '../../src/agent/config.js';
import type { AgentMessage } from '../../src/agent/protocol.js';
import { CREDENTIAL, INSTANCE, TestLogger, TestServer, tearDownAgentTest } from './harness.js';

let dir: string;
let server: TestServer;
let serverUrl: string;
let log: TestLogger;
const agents: Agent[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drover-agent-'));
  server = new TestServer();
  serverUrl = await server.listen();
  log = new TestLogger();
});

afterEach(() => tearDownAgentTest(agents, server, dir));

function config(extra: Partial<AgentConfig> = {}): AgentConfig {
  return agentConfigSchema.parse({ instanceId: INSTANCE, servers: [serverUrl], credential: CREDENTIAL, healthCheckIntervalMs: 1_000, ...extra });
}

function start(cfg: AgentConfig, options: Partial<AgentOptions> = {}): Agent {
  const agent = runAgent(cfg, { logger: log, reconnectInitialMs: 20, reconnectMaxMs: 200, noticePollMs: 20, ...options });
  agents.push(agent);
  return agent;
}

const isHealth = (m: AgentMessage): boolean => m.type === 'health';

function lines(path: string): number {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean).length : 0;
}

describe('agent', () => {
  it('builds the agent URL from the server address', () => {
    expect(agentUrl('http://h:7000')).toBe('ws://h:7000/v1/agent');
    expect(agentUrl('https://h/base/')).toBe('wss://h/base/v1/agent');
  });

  it('connects with its id and credential, writes its pid file, and reports health every interval', async () => {
    const pidFile = join(dir, 'agent.pid');
    start(config({ pidFile }));
    await server.nextMessage(isHealth);
    expect(server.upgrades[0]!.url).toBe('/v1/agent');
    expect(server.upgrades[0]!.headers['x-drover-instance']).toBe(INSTANCE);
    expect(server.upgrades[0]!.headers.authorization).toBe(`Bearer ${CREDENTIAL}`);
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(process.pid));

    await server.count(isHealth, 3);
    const health = server.of('health');
    expect(health.length).toBeGreaterThanOrEqual(3);
    expect(health[0]!.msg).toEqual({ type: 'health', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), workload: 'none' });
    // Every interval (50 ms from the welcome), not faster.
    for (let i = 1; i < health.length; i++) expect(health[i]!.at - health[i - 1]!.at).toBeGreaterThanOrEqual(30);
    expect(server.sockets).toHaveLength(1);
  });

  it('sends no health while the health command fails, keeps the connection, and resumes once it passes', async () => {
    const sick = join(dir, 'sick');
    const runs = join(dir, 'runs');
    start(config({ healthCommand: ['sh', '-c', `echo run >> "${runs}"; test ! -f "${sick}"`] }));
    await server.nextMessage(isHealth);

    const unhealthy = log.next('instance unhealthy; not reporting health');
    writeFileSync(sick, '');
    const line = await unhealthy;
    expect(JSON.stringify(line.obj)).toContain('exit code 1');
    const healthBefore = server.of('health').length;
    const runsBefore = lines(runs);
    await vi.waitFor(() => expect(lines(runs)).toBeGreaterThanOrEqual(runsBefore + 3), { interval: 10 });
    expect(server.of('health').length).toBe(healthBefore); // three more checks, no report
    expect(server.closes).toEqual([]); // still connected

    const from = server.received.length;
    const healthyAgain = log.next('instance healthy again; reporting health');
    rmSync(sick);
    await server.nextMessage(isHealth, from);
    await healthyAgain;
    expect(server.sockets).toHaveLength(1);
  });

  it('supervises the workload: runs it with DROVER_INSTANCE_ID, reports it, restarts it when it exits', async () => {
    const envFile = join(dir, 'workload-env');
    const pidFile = join(dir, 'workload-pid');
    start(config({ command: ['sh', '-c', `echo "$DROVER_INSTANCE_ID" > "${envFile}"; echo $$ > "${pidFile}"; exec sleep 1000`] }), { workloadRestartInitialMs: 100 });
    const first = await server.nextMessage(isHealth);
    expect(first.msg).toMatchObject({ workload: 'running' });
    await vi.waitFor(() => expect(existsSync(pidFile)).toBe(true), { interval: 10 });
    expect(readFileSync(envFile, 'utf8').trim()).toBe(INSTANCE);
    const pid = Number(readFileSync(pidFile, 'utf8'));

    const exited = log.next('workload exited; restarting');
    const unhealthy = log.next('instance unhealthy; not reporting health');
    rmSync(pidFile);
    process.kill(pid, 'SIGKILL');
    await exited;
    expect(JSON.stringify((await unhealthy).obj)).toContain('workload not running');
    const from = server.received.length;
    await log.next('workload started');
    await server.nextMessage(isHealth, from);
    await vi.waitFor(() => expect(existsSync(pidFile)).toBe(true), { interval: 10 });
    expect(Number(readFileSync(pidFile, 'utf8'))).not.toBe(pid);
  });

  it('reconnects after the server drops the connection, and reports health again', async () => {
    start(config());
    await server.nextMessage(isHealth);
    const reconnected = server.nextConnection();
    server.sockets[0]!.terminate();
    const conn = await reconnected;
    expect(conn).toBe(1);
    await server.nextMessage((m, c) => isHealth(m) && c === 1);
    expect(server.of('goodbye')).toEqual([]);
    expect(log.count('connection to server lost')).toBe(1);
  });

  it('tries the next server when one is unreachable', async () => {
    const dead = new TestServer();
    const deadUrl = await dead.listen();
    await dead.close();
    start(config({ servers: [deadUrl, serverUrl] }));
    await server.nextMessage(isHealth);
    expect(log.count('could not connect to server')).toBeGreaterThanOrEqual(1);
  });

  it('skips a server address it cannot use', async () => {
    start(config({ servers: ['ftp://127.0.0.1:21', serverUrl] }));
    await server.nextMessage(isHealth);
    expect(log.count('invalid server address')).toBeGreaterThanOrEqual(1);
  });

  it('drops a connection on which the server has gone silent', async () => {
    start(config(), { serverSilenceMs: 150 });
    await server.nextMessage(isHealth);
    // The test server never pings: after 150 ms of silence the agent reconnects.
    await server.nextConnection();
    expect(log.count('server silent; reconnecting')).toBe(1);
  });

  it('on drain runs the drain command with the drain in its environment and acknowledges on exit 0', async () => {
    const out = join(dir, 'drained');
    start(config({ drainCommand: ['sh', '-c', `echo "$DROVER_INSTANCE_ID|$DROVER_DRAIN_REASON|$DROVER_DRAIN_DEADLINE" > "${out}"`] }));
    await server.nextMessage(isHealth);
    const deadline = new Date(Date.now() + 60_000).toISOString();
    server.send(0, { type: 'drain', reason: 'expiry', deadline });
    await server.nextMessage((m) => m.type === 'drainAck');
    expect(readFileSync(out, 'utf8').trim()).toBe(`${INSTANCE}|expiry|${deadline}`);

    // The server sends the drain again (it missed the ack): the ack is repeated, the command not re-run.
    rmSync(out);
    const from = server.received.length;
    server.send(0, { type: 'drain', reason: 'expiry', deadline });
    await server.nextMessage((m) => m.type === 'drainAck', from);
    expect(existsSync(out)).toBe(false);
  });

  it('does not acknowledge a drain whose command fails, nor one without a drain command', async () => {
    start(config({ drainCommand: ['sh', '-c', 'exit 1'] }));
    await server.nextMessage(isHealth);
    const failed = log.next('drain command failed; drain not acknowledged');
    server.send(0, { type: 'drain', reason: 'unhealthy', deadline: new Date(Date.now() + 60_000).toISOString() });
    expect(JSON.stringify((await failed).obj)).toContain('exit code 1');
    // Health still flows after the failure, and no ack came with it.
    await server.nextMessage(isHealth, server.received.length);
    expect(server.of('drainAck')).toEqual([]);
    await agents.pop()!.stop();

    start(config());
    const conn = await server.nextConnection();
    await server.nextMessage((m, c) => isHealth(m) && c === conn);
    const noCommand = log.next('no drainCommand configured; not acknowledging (the operator or the deadline ends the drain)');
    server.send(conn, { type: 'drain', reason: 'scaleDown', deadline: new Date(Date.now() + 60_000).toISOString() });
    await noCommand;
    await server.nextMessage((m, c) => isHealth(m) && c === conn, server.received.length);
    expect(server.of('drainAck')).toEqual([]);
  });

  it('forwards a termination notice from the notice file, once per distinct notice', async () => {
    const noticeFile = join(dir, 'notice.json');
    start(config({ noticeFile }));
    await server.nextMessage(isHealth);
    const at1 = new Date(Date.now() + 120_000).toISOString();
    writeFileSync(noticeFile, JSON.stringify({ terminateAt: at1 }));
    const first = await server.nextMessage((m) => m.type === 'notice');
    expect(first.msg).toEqual({ type: 'notice', terminateAt: at1 });

    // The same notice is polled again and again: not re-sent. A new one is.
    const polls = log.count('termination notice seen');
    await server.count(isHealth, server.of('health').length + 3);
    expect(server.of('notice')).toHaveLength(1);
    expect(log.count('termination notice seen')).toBe(polls);
    const at2 = new Date(Date.now() + 30_000).toISOString();
    writeFileSync(noticeFile, JSON.stringify({ terminateAt: at2 }));
    const second = await server.nextMessage((m) => m.type === 'notice' && m.terminateAt === at2);
    expect(second.msg).toEqual({ type: 'notice', terminateAt: at2 });
    expect(server.of('notice')).toHaveLength(2);
  });

  it('sends a notice seen while disconnected after the next welcome', async () => {
    const noticeFile = join(dir, 'notice.json');
    server.sendWelcome = false;
    start(config({ noticeFile }));
    await server.nextConnection();
    const at = new Date(Date.now() + 120_000).toISOString();
    const seen = log.next('termination notice seen');
    writeFileSync(noticeFile, JSON.stringify({ terminateAt: at }));
    await seen;
    expect(server.received).toEqual([]); // not before the welcome
    server.send(0, { type: 'welcome', instanceId: INSTANCE, healthCheckIntervalMs: 50, serverTime: new Date().toISOString() });
    expect((await server.nextMessage((m) => m.type === 'notice')).msg).toEqual({ type: 'notice', terminateAt: at });
  });

  it('stop() says goodbye, closes normally, stops the workload and removes the pid file', async () => {
    const pidFile = join(dir, 'agent.pid');
    const workloadPid = join(dir, 'workload-pid');
    const agent = runAgent(config({ pidFile, command: ['sh', '-c', `echo $$ > "${workloadPid}"; exec sleep 1000`] }), { logger: log });
    await server.nextMessage(isHealth);
    await vi.waitFor(() => expect(existsSync(workloadPid)).toBe(true), { interval: 10 });
    const wl = Number(readFileSync(workloadPid, 'utf8'));
    const closed = server.nextClose();
    await agent.stop('shutting down');
    expect(server.of('goodbye').map((r) => r.msg)).toEqual([{ type: 'goodbye', reason: 'shutting down' }]);
    expect(await closed).toEqual({ conn: 0, code: 1000 });
    expect(await agent.done).toEqual({ exitCode: 0, reason: 'shutting down' });
    expect(existsSync(pidFile)).toBe(false);
    expect(() => process.kill(wl, 0)).toThrow();
    await agent.stop(); // idempotent
  });

  it('gives up with exit code 2 after repeated 401 refusals, backing off between attempts', async () => {
    server.refuseWith = 401;
    const agent = start(config(), { maxRefusals: 4, reconnectInitialMs: 20, random: () => 1 });
    expect(await agent.done).toEqual({ exitCode: 2, reason: 'credential refused by the server' });
    expect(server.upgrades).toHaveLength(4);
    const gaps = server.upgrades.slice(1).map((u, i) => u.at - server.upgrades[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(log.count('server refused the agent credential')).toBe(4);
  });

  it('gives up with exit code 3 when the server says the instance is deleted', async () => {
    server.refuseWith = 403;
    const agent = start(config(), { maxRefusals: 2 });
    expect(await agent.done).toEqual({ exitCode: 3, reason: 'instance deleted or unknown to the server' });
    expect(log.count('server says this instance is deleted or unknown')).toBe(2);
  });

  it('counts a close with code 4403 (instance deleted) as a refusal', async () => {
    server.on('connection', (conn: number) => server.sockets[conn]!.close(4403, 'instance deleted'));
    const agent = start(config(), { maxRefusals: 2 });
    expect(await agent.done).toEqual({ exitCode: 3, reason: 'instance deleted or unknown to the server' });
    expect(server.sockets).toHaveLength(2);
  });

  it('keeps retrying through other refusals (server stopping) and connects once accepted', async () => {
    server.refuseWith = 503;
    start(config(), { maxRefusals: 1 });
    await new Promise<void>((resolve) => server.on('upgrade', () => server.upgrades.length >= 3 && resolve()));
    server.refuseWith = undefined;
    await server.nextMessage(isHealth);
    expect(log.count('server refused the agent connection')).toBeGreaterThanOrEqual(3);
  });
});
