/**
 * The agent's self-service socket (protect, unprotect, extend, status), automatic drain
 * extension, drain cancellation, and `drover self ...` (the built CLI) against a real agent.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runAgent, type Agent, type AgentOptions } from '../../src/agent/agent.js';
import { agentConfigSchema, type AgentConfig } from '../../src/agent/config.js';
import type { AgentMessage, ServerMessage } from '../../src/agent/protocol.js';
import type { SelfResponse } from '../../src/agent/self-socket.js';
import { CLI, requireBuild } from '../e2e/process-harness.js';
import { CREDENTIAL, INSTANCE, TestLogger, TestServer, tearDownAgentTest } from './harness.js';

let dir: string;
let sock: string;
let server: TestServer;
let serverUrl: string;
let log: TestLogger;
const agents: Agent[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drover-self-'));
  sock = join(dir, 'agent.sock');
  server = new TestServer();
  serverUrl = await server.listen();
  log = new TestLogger();
});

afterEach(() => tearDownAgentTest(agents, server, dir));

function config(extra: Partial<AgentConfig> = {}): AgentConfig {
  return agentConfigSchema.parse({ instanceId: INSTANCE, servers: [serverUrl], credential: CREDENTIAL, healthCheckIntervalMs: 1_000, selfSocket: sock, ...extra });
}

function start(cfg: AgentConfig, options: Partial<AgentOptions> = {}): Agent {
  const agent = runAgent(cfg, { logger: log, reconnectInitialMs: 20, reconnectMaxMs: 200, noticePollMs: 20, ...options });
  agents.push(agent);
  return agent;
}

const isHealth = (m: AgentMessage): boolean => m.type === 'health';

/** Answers agent messages as a Drover server would: `answer` returns the reply (or nothing). */
function respond(answer: (msg: AgentMessage) => ServerMessage | undefined): void {
  server.on('message', (conn: number, msg: AgentMessage) => {
    const reply = answer(msg);
    if (reply) server.send(conn, reply);
  });
}

function result(msg: AgentMessage, fields: Omit<Extract<ServerMessage, { type: 'result' }>, 'type' | 'requestId'>): ServerMessage {
  if (!('requestId' in msg)) throw new Error(`no requestId in ${msg.type}`);
  return { type: 'result', requestId: msg.requestId, ...fields };
}

/** Writes `raw` to the socket, half-closes, and returns every answer line until the agent closes. */
function talk(raw: string, path = sock): Promise<SelfResponse[]> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(raw));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as SelfResponse)));
  });
}

async function ask(request: object): Promise<SelfResponse> {
  const answers = await talk(`${JSON.stringify(request)}\n`);
  expect(answers).toHaveLength(1);
  return answers[0]!;
}

describe('agent self-service socket', () => {
  it('forwards protect with a fresh requestId and answers with the server result; status shows the protection', async () => {
    start(config());
    await server.nextMessage(isHealth);
    const until = new Date(Date.now() + 1_800_000).toISOString();
    respond((m) => (m.type === 'protect' ? result(m, { ok: true, message: `protected until ${until}`, protectedUntil: until }) : undefined));

    expect(await ask({ op: 'protect', for: '30m' })).toEqual({ ok: true, message: `protected until ${until}`, protectedUntil: until });
    expect(await ask({ op: 'protect', for: '1h30m' })).toMatchObject({ ok: true });
    const sent = server.of('protect').map((r) => r.msg);
    expect(sent).toEqual([
      { type: 'protect', requestId: expect.any(String), forMs: 1_800_000 },
      { type: 'protect', requestId: expect.any(String), forMs: 5_400_000 },
    ]);
    const ids = sent.map((m) => ('requestId' in m ? m.requestId : ''));
    expect(new Set(ids).size).toBe(2);

    expect(await ask({ op: 'status' })).toEqual({
      ok: true,
      message: `connected to the Drover server; not draining; protected until ${until}`,
      connected: true,
      draining: false,
      protectedUntil: until,
    });
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(sock).isSocket()).toBe(true);
  });

  it('forwards unprotect and extend; a refusal is passed on; an extension moves the known drain deadline', async () => {
    start(config());
    await server.nextMessage(isHealth);
    const later = new Date(Date.now() + 600_000).toISOString();
    let draining = false;
    respond((m) => {
      if (m.type === 'unprotect') return result(m, { ok: true, message: 'protection ended', protectedUntil: null });
      if (m.type === 'extend') return draining ? result(m, { ok: true, message: 'drain extended', drainDeadline: later }) : result(m, { ok: false, message: 'instance is not draining' });
      return undefined;
    });

    expect(await ask({ op: 'unprotect' })).toEqual({ ok: true, message: 'protection ended', protectedUntil: null });
    expect(server.of('unprotect').map((r) => r.msg)).toEqual([{ type: 'unprotect', requestId: expect.any(String) }]);
    expect(await ask({ op: 'extend', by: '10m' })).toEqual({ ok: false, message: 'instance is not draining' });

    const deadline = new Date(Date.now() + 120_000).toISOString();
    const requested = log.next('drain requested');
    server.send(0, { type: 'drain', reason: 'scaleDown', deadline });
    await requested;
    draining = true;
    expect(await ask({ op: 'status' })).toMatchObject({ connected: true, draining: true, drainReason: 'scaleDown', drainDeadline: deadline, protectedUntil: null });
    expect(await ask({ op: 'extend', by: '10m' })).toEqual({ ok: true, message: 'drain extended', drainDeadline: later });
    expect(server.of('extend').map((r) => r.msg)).toEqual([
      { type: 'extend', requestId: expect.any(String), byMs: 600_000 },
      { type: 'extend', requestId: expect.any(String), byMs: 600_000 },
    ]);
    expect(await ask({ op: 'status' })).toMatchObject({
      message: `connected to the Drover server; draining (scaleDown) until ${later}; not protected`,
      draining: true,
      drainDeadline: later,
    });
  });

  it('forwards ready as the launch hook\'s continue and answers with the server result', async () => {
    start(config());
    await server.nextMessage(isHealth);
    respond((m) => (m.type === 'launchHook' ? result(m, { ok: true, message: 'launch hook completed: in service once healthy' }) : undefined));
    expect(await ask({ op: 'ready' })).toEqual({ ok: true, message: 'launch hook completed: in service once healthy' });
    expect(server.of('launchHook').map((r) => r.msg)).toEqual([{ type: 'launchHook', requestId: expect.any(String), result: 'continue' }]);
  });

  it('answers at once when not connected to the server', async () => {
    server.sendWelcome = false; // connected, never welcomed: not usable
    start(config());
    await server.nextConnection();
    expect(await ask({ op: 'protect', for: '30m' })).toEqual({ ok: false, message: 'not connected to the Drover server' });
    expect(await ask({ op: 'status' })).toEqual({ ok: true, message: 'not connected to the Drover server; not draining', connected: false, draining: false });
    expect(server.received).toEqual([]);
  });

  it('answers with a timeout when the server is silent, and when the connection drops before the answer', async () => {
    start(config(), { selfRequestTimeoutMs: 100 });
    await server.nextMessage(isHealth);
    expect(await ask({ op: 'protect', for: '30m' })).toEqual({ ok: false, message: 'no answer from the server within 100ms' });
    expect(server.of('protect')).toHaveLength(1);

    await agents.pop()!.stop();
    start(config());
    const conn = await server.nextConnection();
    await server.nextMessage((m, c) => isHealth(m) && c === conn);
    server.on('message', (c: number, m: AgentMessage) => {
      if (m.type === 'unprotect') server.sockets[c]!.terminate();
    });
    expect(await ask({ op: 'unprotect' })).toEqual({ ok: false, message: 'the connection to the Drover server was lost before it answered' });
  });

  it('answers bad requests, answers several requests in order, and answers after the client half-closes', async () => {
    start(config());
    await server.nextMessage(isHealth);
    const answers = await talk(['nonsense', '[1]', '{"op":"fly"}', '{"op":"protect","for":"soon"}', '{"op":"protect"}', '{"op":"extend","by":"31d"}', '', '{"op":"status"}'].join('\n'));
    expect(answers).toEqual([
      { ok: false, message: 'bad request: not JSON' },
      { ok: false, message: 'bad request: not a JSON object' },
      { ok: false, message: 'bad request: "op" must be one of protect, unprotect, extend, ready, status' },
      { ok: false, message: 'protect: "for" must be a duration such as "90s", "30m" or "2h"' },
      { ok: false, message: 'protect: "for" must be a duration such as "90s", "30m" or "2h"' },
      { ok: false, message: 'extend: "by" must be more than 0 and at most 30d' },
      expect.objectContaining({ ok: true, connected: true }),
    ]);
    expect(server.of('protect')).toEqual([]);
    expect(server.of('extend')).toEqual([]);
  });

  it('gives its socket to the workload, the health command and the drain command; replaces a stale socket; removes it at stop', async () => {
    // A stale socket: its listener was killed without removing it.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(statSync(sock).isSocket()).toBe(true);
    const out = (name: string): string => join(dir, name);
    const agent = start(
      config({
        command: ['sh', '-c', `echo "$DROVER_AGENT_SOCKET" > "${out('workload')}"; exec sleep 1000`],
        healthCommand: ['sh', '-c', `echo "$DROVER_AGENT_SOCKET" > "${out('health')}"`],
        drainCommand: ['sh', '-c', `echo "$DROVER_AGENT_SOCKET" > "${out('drain')}"`],
      }),
    );
    await server.nextMessage(isHealth);
    server.send(0, { type: 'drain', reason: 'expiry', deadline: new Date(Date.now() + 60_000).toISOString() });
    await server.nextMessage((m) => m.type === 'drainAck');
    for (const name of ['workload', 'health', 'drain']) expect(readFileSync(out(name), 'utf8').trim(), name).toBe(sock);
    expect(log.count('agent socket listening')).toBe(1);
    expect((await ask({ op: 'status' })).ok).toBe(true);

    await agent.stop();
    expect(existsSync(sock)).toBe(false);
  });

  it('leaves alone a path that is not a socket, and runs on without one', async () => {
    writeFileSync(sock, 'not a socket');
    const refused = log.next('agent socket path is taken by something that is not a socket; not listening');
    start(config());
    await refused;
    await server.nextMessage(isHealth);
    await agents.pop()!.stop();
    expect(readFileSync(sock, 'utf8')).toBe('not a socket');
  });
});

describe('drain extension and cancellation', () => {
  const capped = 'drain deadline at its limit; not asking again (the drain command is killed at the deadline)';
  const failed = 'drain command failed; drain not acknowledged';

  it('asks for more time while the drain command runs near the deadline, stops asking once the deadline stops moving, kills it at the extended deadline', async () => {
    start(config({ drainCommand: ['sleep', '1000'] }));
    await server.nextMessage(isHealth);
    const first = Date.now() + 1_200;
    const extended = new Date(first + 1_000).toISOString();
    respond((m) => (m.type === 'extend' ? result(m, { ok: true, message: `drain deadline ${extended}`, drainDeadline: extended }) : undefined));

    const atCap = log.next(capped);
    const ended = log.next(failed);
    server.send(0, { type: 'drain', reason: 'scaleDown', deadline: new Date(first).toISOString() });
    await atCap;
    // The welcome's interval is 50 ms: extensions are asked for by max(5 × 50 ms, 60 s).
    expect(server.of('extend').map((r) => r.msg)).toEqual([
      { type: 'extend', requestId: expect.any(String), byMs: 60_000 },
      { type: 'extend', requestId: expect.any(String), byMs: 60_000 },
    ]);
    expect(await ask({ op: 'status' })).toMatchObject({ draining: true, drainDeadline: extended });

    const line = await ended;
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(extended));
    expect(JSON.stringify(line.obj)).toContain('timed out');
    expect(server.of('extend')).toHaveLength(2);
    expect(log.count(capped)).toBe(1);
    expect(log.count('drain deadline changed')).toBe(1);
    expect(server.of('drainAck')).toEqual([]);
  });

  it('retries an extension the server did not answer', async () => {
    start(config({ drainCommand: ['sleep', '1000'] }), { selfRequestTimeoutMs: 100 });
    await server.nextMessage(isHealth);
    const far = new Date(Date.now() + 600_000).toISOString();
    let seen = 0;
    respond((m) => (m.type === 'extend' && ++seen === 2 ? result(m, { ok: true, message: 'extended', drainDeadline: far }) : undefined));
    const moved = log.next('drain deadline changed');
    server.send(0, { type: 'drain', reason: 'expiry', deadline: new Date(Date.now() + 5_000).toISOString() });
    expect((await moved).obj).toEqual({ deadline: far });
    expect(log.count('drain extension not answered; retrying')).toBe(1);
    expect(server.of('extend')).toHaveLength(2);
    expect(await ask({ op: 'status' })).toMatchObject({ draining: true, drainDeadline: far });
  });

  it('stops asking when the server refuses an extension, and still kills the command at the deadline', async () => {
    start(config({ drainCommand: ['sleep', '1000'] }));
    await server.nextMessage(isHealth);
    respond((m) => (m.type === 'extend' ? result(m, { ok: false, message: 'drain extensions are not allowed for this group' }) : undefined));
    const refused = log.next('drain extension refused by the server; not asking again');
    const ended = log.next(failed);
    const deadline = Date.now() + 1_200;
    server.send(0, { type: 'drain', reason: 'expiry', deadline: new Date(deadline).toISOString() });
    expect((await refused).obj).toMatchObject({ message: 'drain extensions are not allowed for this group' });
    expect(JSON.stringify((await ended).obj)).toContain('timed out');
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    expect(server.of('extend')).toHaveLength(1);
  });

  it('on drainCancelled kills the drain command (SIGKILL after the grace when it ignores SIGTERM), forgets the drain, sends no ack', async () => {
    const pidFile = join(dir, 'drain-pid');
    start(config({ drainCommand: ['sh', '-c', `trap "" TERM; echo $$ > "${pidFile}"; exec sleep 1000`] }), { drainCancelGraceMs: 100 });
    await server.nextMessage(isHealth);
    server.send(0, { type: 'drain', reason: 'scaleDown', deadline: new Date(Date.now() + 60_000).toISOString() });
    await vi.waitFor(() => expect(existsSync(pidFile) && /^\d+\n$/.test(readFileSync(pidFile, 'utf8'))).toBe(true), { interval: 10 });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(() => process.kill(pid, 0)).not.toThrow();

    const cancelled = log.next('drain cancelled by the server');
    const ended = log.next('cancelled drain command ended');
    server.send(0, { type: 'drainCancelled' });
    expect((await cancelled).obj).toEqual({ reason: 'scaleDown', pid });
    expect(JSON.stringify((await ended).obj)).toContain('SIGKILL');
    expect(() => process.kill(pid, 0)).toThrow();
    expect(await ask({ op: 'status' })).toMatchObject({ draining: false });
    await server.nextMessage(isHealth, server.received.length);
    expect(server.of('drainAck')).toEqual([]);
    expect(log.count(failed)).toBe(0);

    // A later drain runs the command again.
    rmSync(pidFile);
    server.send(0, { type: 'drain', reason: 'expiry', deadline: new Date(Date.now() + 60_000).toISOString() });
    await vi.waitFor(() => expect(existsSync(pidFile)).toBe(true), { interval: 10 });
  });
});

describe('drover self (the built CLI)', { timeout: 60_000 }, () => {
  beforeAll(() => requireBuild());

  function run(args: string[], env: Record<string, string | undefined> = { DROVER_AGENT_SOCKET: sock }): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
      for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
      const child = spawn(process.execPath, [CLI, ...args], { env: childEnv });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  it('protect --for 30m prints the result and exits 0; status with -o json; a refusal exits 1', async () => {
    start(config());
    await server.nextMessage(isHealth);
    const until = new Date(Date.now() + 1_800_000).toISOString();
    respond((m) => {
      if (m.type === 'protect') return result(m, { ok: true, message: 'instance protected', protectedUntil: until });
      if (m.type === 'extend') return result(m, { ok: false, message: 'instance is not draining' });
      if (m.type === 'unprotect') return result(m, { ok: true, message: 'protection ended', protectedUntil: null });
      return undefined;
    });

    const protect = await run(['self', 'protect', '--for', '30m']);
    expect(protect).toEqual({ status: 0, stdout: `instance protected\nprotected until: ${until}\n`, stderr: '' });
    expect(server.of('protect').map((r) => r.msg)).toEqual([{ type: 'protect', requestId: expect.any(String), forMs: 1_800_000 }]);

    const status = await run(['-o', 'json', 'self', 'status']);
    expect(status.status).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ ok: true, connected: true, draining: false, protectedUntil: until });
    const table = await run(['self', 'status']);
    expect(table.stdout).toBe(`connected:       yes\ndraining:        no\nprotected until: ${until}\n`);

    const extend = await run(['self', 'extend', '10m']);
    expect(extend).toEqual({ status: 1, stdout: '', stderr: 'drover: instance is not draining\n' });
    expect(server.of('extend').map((r) => r.msg)).toEqual([{ type: 'extend', requestId: expect.any(String), byMs: 600_000 }]);

    const unprotect = await run(['self', 'unprotect', '-o', 'json']);
    expect(unprotect.status).toBe(0);
    expect(JSON.parse(unprotect.stdout)).toEqual({ ok: true, message: 'protection ended', protectedUntil: null });
  });

  it('ready completes the launch hook and exits 0; a refusal exits 1', async () => {
    start(config());
    await server.nextMessage(isHealth);
    let answered = 0;
    respond((m) => {
      if (m.type !== 'launchHook') return undefined;
      answered++;
      return answered === 1 ? result(m, { ok: true, message: 'launch hook completed: in service once healthy' }) : result(m, { ok: false, message: 'instance i-1 has no launch hook pending: it was continued already' });
    });
    expect(await run(['self', 'ready'])).toEqual({ status: 0, stdout: 'launch hook completed: in service once healthy\n', stderr: '' });
    expect(await run(['self', 'ready'])).toEqual({ status: 1, stdout: '', stderr: 'drover: instance i-1 has no launch hook pending: it was continued already\n' });
    expect(server.of('launchHook').map((r) => r.msg)).toEqual([
      { type: 'launchHook', requestId: expect.any(String), result: 'continue' },
      { type: 'launchHook', requestId: expect.any(String), result: 'continue' },
    ]);
  });

  it('exits 3 when the socket cannot be reached, 2 on a bad command line', async () => {
    const unreachable = await run(['self', 'status', '--socket', join(dir, 'nothing.sock')]);
    expect(unreachable.status).toBe(3);
    expect(unreachable.stderr).toMatch(/^drover: cannot reach the agent's socket at .*nothing\.sock: ENOENT\n$/);
    expect((await run(['self', 'status'])).status).toBe(3); // DROVER_AGENT_SOCKET set, no agent

    const noFor = await run(['self', 'protect']);
    expect(noFor.status).toBe(2);
    expect(noFor.stderr).toMatch(/--for <duration>/);
    const badFor = await run(['self', 'protect', '--for', 'soon']);
    expect(badFor).toMatchObject({ status: 2, stderr: 'drover: --for: not a duration: soon (e.g. 90s, 30m, 2h)\n' });
    const noSocket = await run(['self', 'status'], { DROVER_AGENT_SOCKET: undefined });
    expect(noSocket.status).toBe(2);
    expect(noSocket.stderr).toMatch(/DROVER_AGENT_SOCKET is not set/);
  });
});
