/**
 * A real Drover server with `server.tls` (certificates the test makes with openssl): HTTPS and
 * WSS on one port, verified against the test's CA; real agents (runAgent, in this process)
 * connecting over wss://; certificate rotation without a restart; mutual TLS with clientCa.
 */
import { readFileSync, renameSync, writeFileSync, copyFileSync, mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { runAgent, type Agent } from '../../src/agent/agent.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { SystemClock } from '../../src/clock/index.js';
import { parseConfig } from '../../src/config/index.js';
import { readServerTls, ServerTls } from '../../src/server/tls.js';
import { TestLogger } from '../agent/harness.js';
import { waitFor } from '../e2e/process-harness.js';
import { fingerprintOf, makeCa, makeLeaf, type Ca, type CertFiles } from '../helpers/certs.js';
import { TestServer } from '../helpers/server-harness.js';
import { RecordingLog, httpsCall } from '../helpers/tls-client.js';

interface InstanceRow {
  id: string;
  connected: boolean;
  healthAt: string | null;
}

let dir: string;
let ca: Ca;
let otherCa: Ca;
let serverPair: CertFiles;
let clientPair: CertFiles;
let strangerPair: CertFiles;

const servers: TestServer[] = [];
const agents: Agent[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'drover-tls-'));
  ca = makeCa(dir, 'drover-ca');
  otherCa = makeCa(dir, 'other-ca');
  serverPair = makeLeaf(dir, ca, 'server-1', { usage: ['serverAuth'] });
  clientPair = makeLeaf(dir, ca, 'client-1', { usage: ['clientAuth'] });
  strangerPair = makeLeaf(dir, otherCa, 'stranger', { usage: ['clientAuth'] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop('test over');
  for (const s of servers.splice(0)) await s.close();
});

/** The server's cert and key copied to their own folder (the files a rotation replaces). */
function liveFiles(name: string, pair: CertFiles = serverPair): CertFiles {
  const live = join(dir, `live-${name}`);
  mkdirSync(live, { recursive: true });
  const files = { cert: join(live, 'tls.crt'), key: join(live, 'tls.key') };
  copyFileSync(pair.cert, files.cert);
  copyFileSync(pair.key, files.key);
  return files;
}

async function startServer(tls: Record<string, unknown>, log?: RecordingLog): Promise<TestServer> {
  const s = new TestServer({ groups: { default: { web: { size: 1, template: 'web', drainTimeout: '1m' } } }, server: { tls }, ...(log ? { logger: log.logger } : {}) });
  servers.push(s);
  await s.start();
  return s;
}

const pem = (file: string): Buffer => readFileSync(file);

/** The id of the group's one instance, once created (read over HTTPS). */
async function instanceId(s: TestServer, client: { cert?: Buffer; key?: Buffer } = {}): Promise<string> {
  const rows = await waitFor('an instance', async () => (await httpsCall<InstanceRow[]>(`${s.url}/v1/instances?tenant=default&group=web`, { ca: ca.pem, ...client })).body, (r) => r.length === 1, 10_000, 50);
  return rows[0]!.id;
}

function startAgent(s: TestServer, id: string, settings: Record<string, unknown>, logger: TestLogger): Agent {
  const config = agentConfigSchema.parse({ instanceId: id, servers: [s.url], credential: s.credential(id), healthCheckIntervalMs: 100, ...settings });
  const agent = runAgent(config, { logger, keepAlive: false, reconnectInitialMs: 50, reconnectMaxMs: 200 });
  agents.push(agent);
  return agent;
}

/** Resolves once the agent logged a failed connection whose error matches `pattern`. */
function connectFailure(logger: TestLogger, pattern: RegExp): Promise<unknown> {
  return new Promise((resolve) => {
    const check = (): boolean => {
      const line = logger.lines.find((l) => l.msg === 'could not connect to server' && pattern.test(String((l.obj as { err?: unknown }).err)));
      if (line) resolve(line.obj);
      return line !== undefined;
    };
    if (check()) return;
    const on = (): void => {
      if (check()) logger.off('line', on);
    };
    logger.on('line', on);
  });
}

/** A plain-HTTP GET; resolves with the status, or rejects with the connection's error. */
function plainGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('drover server with server.tls', { timeout: 60_000 }, () => {
  it('serves HTTPS verified against the CA, advertises https://, and does not speak plain HTTP or pass an unverified client', async () => {
    const s = await startServer({ ...liveFiles('basic'), ca: ca.cert });
    expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await httpsCall<{ ok: boolean }>(`${s.url}/healthz`, { ca: ca.pem });
    expect(res.status).toBe(200);
    expect(res.body.ok).toBe(true);
    expect(res.fingerprint).toBe(fingerprintOf(serverPair.cert));
    // Plain HTTP to the same port: no HTTP answer at all.
    await expect(plainGet(s.url.replace('https:', 'http:') + '/healthz')).rejects.toThrow();
    // A client that trusts only the system's CAs, or another CA, refuses the server.
    await expect(httpsCall(`${s.url}/healthz`)).rejects.toThrow(/unable to verify the first certificate/);
    await expect(httpsCall(`${s.url}/healthz`, { ca: otherCa.pem })).rejects.toThrow(/unable to verify the first certificate/);
  });

  it('takes a real agent over wss:// verifying the CA, which reports health; an agent with another CA, or only the system CAs, is refused with a TLS error', async () => {
    const s = await startServer({ ...liveFiles('agents'), ca: ca.cert });
    const id = await instanceId(s);

    const wrongLog = new TestLogger();
    const wrong = startAgent(s, id, { serverCa: otherCa.pem }, wrongLog);
    await connectFailure(wrongLog, /unable to verify the first certificate/);
    const systemLog = new TestLogger();
    const system = startAgent(s, id, {}, systemLog);
    await connectFailure(systemLog, /unable to verify the first certificate/);
    expect(wrongLog.count('connected to server') + systemLog.count('connected to server')).toBe(0);
    await wrong.stop();
    await system.stop();

    const log = new TestLogger();
    startAgent(s, id, { serverCa: ca.pem }, log);
    await log.next('connected to server');
    const row = await waitFor(
      'the instance connected and healthy',
      async () => (await httpsCall<InstanceRow>(`${s.url}/v1/instances/${id}`, { ca: ca.pem })).body,
      (r) => r.connected && r.healthAt !== null,
      10_000,
      50,
    );
    expect(row.id).toBe(id);
  });

  it('serves a rotated certificate to new connections without a restart; a new pair that does not match keeps the old one', async () => {
    const files = liveFiles('rotation');
    const log = new RecordingLog();
    const s = await startServer({ ...files, ca: ca.cert }, log);
    const first = fingerprintOf(serverPair.cert);
    expect((await httpsCall(`${s.url}/healthz`, { ca: ca.pem })).fingerprint).toBe(first);

    // Rotate: a new pair from the same CA, each file replaced by rename as deployment tools do.
    const next = makeLeaf(dir, ca, 'server-2', { usage: ['serverAuth'] });
    const second = fingerprintOf(next.cert);
    expect(second).not.toBe(first);
    writeFileSync(`${files.key}.tmp`, pem(next.key));
    renameSync(`${files.key}.tmp`, files.key);
    writeFileSync(`${files.cert}.tmp`, pem(next.cert));
    renameSync(`${files.cert}.tmp`, files.cert);
    await log.waitFor('server certificate reloaded', (r) => r.fingerprint === second);
    expect((await httpsCall(`${s.url}/healthz`, { ca: ca.pem })).fingerprint).toBe(second);

    // A key that belongs to another certificate: rejected, logged, and the second pair stays.
    const third = makeLeaf(dir, ca, 'server-3', { usage: ['serverAuth'] });
    writeFileSync(files.key, pem(third.key));
    const rejected = await log.waitFor('new server.tls files rejected; the previous certificate stays in force');
    expect(rejected.problem).toMatch(new RegExp(`^checking server.tls.key ${files.key}: it is not the private key of the certificate in server.tls.cert ${files.cert}`));
    expect(rejected.fingerprint).toBe(second);
    const after = await httpsCall<{ ok: boolean }>(`${s.url}/healthz`, { ca: ca.pem });
    expect(after.status).toBe(200);
    expect(after.fingerprint).toBe(second);
  });

  it('with clientCa: refuses a client without a certificate or with another CA\'s at the handshake; passes one the clientCa signed, and an agent presenting it', async () => {
    const s = await startServer({ ...liveFiles('mtls'), ca: ca.cert, clientCa: ca.cert });
    const healthz = `${s.url}/healthz`;
    // TLS 1.3: the server's alert 116 (certificate required) reaches the client on its first read.
    await expect(httpsCall(healthz, { ca: ca.pem })).rejects.toThrow(/certificate required/);
    await expect(httpsCall(healthz, { ca: ca.pem, cert: pem(strangerPair.cert), key: pem(strangerPair.key) })).rejects.toThrow(/unknown ca|ECONNRESET|socket hang up/i);
    const ok = await httpsCall<{ ok: boolean }>(healthz, { ca: ca.pem, cert: pem(clientPair.cert), key: pem(clientPair.key) });
    expect(ok.status).toBe(200);

    const id = await instanceId(s, { cert: pem(clientPair.cert), key: pem(clientPair.key) });
    const bareLog = new TestLogger();
    const bare = startAgent(s, id, { serverCa: ca.pem }, bareLog);
    await connectFailure(bareLog, /certificate required|ECONNRESET|socket hang up/i);
    await bare.stop();
    const log = new TestLogger();
    startAgent(s, id, { serverCa: ca.pem, clientCert: clientPair.cert, clientKey: clientPair.key }, log);
    await log.next('connected to server');
    await waitFor(
      'the instance connected and healthy',
      async () => (await httpsCall<InstanceRow>(`${s.url}/v1/instances/${id}`, { ca: ca.pem, cert: pem(clientPair.cert), key: pem(clientPair.key) })).body,
      (r) => r.connected && r.healthAt !== null,
      10_000,
      50,
    );
  });

  it('keeps requiring client certificates after a rotation under mutual TLS', async () => {
    const files = liveFiles('mtls-rotation');
    const log = new RecordingLog();
    const s = await startServer({ ...files, ca: ca.cert, clientCa: ca.cert }, log);
    const client = { ca: ca.pem, cert: pem(clientPair.cert), key: pem(clientPair.key) };
    const next = makeLeaf(dir, ca, 'server-4', { usage: ['serverAuth'] });
    writeFileSync(`${files.key}.tmp`, pem(next.key));
    renameSync(`${files.key}.tmp`, files.key);
    writeFileSync(`${files.cert}.tmp`, pem(next.cert));
    renameSync(`${files.cert}.tmp`, files.cert);
    await log.waitFor('server certificate reloaded', (r) => r.fingerprint === fingerprintOf(next.cert));
    expect((await httpsCall(`${s.url}/healthz`, client)).fingerprint).toBe(fingerprintOf(next.cert));
    await expect(httpsCall(`${s.url}/healthz`, { ca: ca.pem })).rejects.toThrow(/certificate required/);
  });

  it('refuses to start when a TLS file cannot be used, naming the setting and the file', async () => {
    const missing = join(dir, 'missing.crt');
    const s = new TestServer({ server: { tls: { cert: missing, key: serverPair.key } } });
    servers.push(s);
    await expect(s.start()).rejects.toThrow(`reading server.tls.cert ${missing}: ENOENT`);
    const other = makeLeaf(dir, ca, 'server-other', { usage: ['serverAuth'] });
    expect(() => readServerTls({ cert: serverPair.cert, key: other.key })).toThrow(`checking server.tls.key ${other.key}: it is not the private key of the certificate in server.tls.cert ${serverPair.cert}`);
    expect(() => readServerTls({ cert: serverPair.key, key: serverPair.key })).toThrow(`reading server.tls.cert ${serverPair.key}: no PEM certificate`);
    expect(() => readServerTls({ cert: serverPair.cert, key: serverPair.cert })).toThrow(`reading server.tls.key ${serverPair.cert}:`);
    expect(() => readServerTls({ cert: serverPair.cert, key: serverPair.key, clientCa: serverPair.key })).toThrow(`reading server.tls.clientCa ${serverPair.key}: no PEM certificate`);
    expect(() => readServerTls({ cert: serverPair.cert, key: serverPair.key, agentCert: clientPair.cert, agentKey: serverPair.key })).toThrow(`checking server.tls.agentKey ${serverPair.key}`);
  });

  it('config: agentCert and agentKey go together; the agent config takes only a PEM serverCa and clientCert with clientKey', () => {
    const base = { templates: { web: { image: 'x' } }, groups: { default: { web: { size: 1, template: 'web' } } } };
    const half = parseConfig({ ...base, server: { tls: { cert: 'c', key: 'k', clientCa: 'ca', agentCert: 'a.crt' } } });
    expect(half.ok).toBe(false);
    if (!half.ok) expect(half.error.message).toContain('server.tls.agentKey: agentCert and agentKey go together');
    expect(parseConfig({ ...base, server: { tls: { cert: 'c', key: 'k', agentCert: 'a.crt', agentKey: 'a.key' } } }).ok).toBe(true);
    const agent = { instanceId: 'i-1', servers: ['https://127.0.0.1:7400'], credential: 'c' };
    expect(agentConfigSchema.safeParse({ ...agent, serverCa: ca.pem }).success).toBe(true);
    const notPem = agentConfigSchema.safeParse({ ...agent, serverCa: 'hello' });
    expect(notPem.error?.issues[0]?.message).toMatch(/no PEM certificate/);
    const lone = agentConfigSchema.safeParse({ ...agent, clientCert: '/a.crt' });
    expect(lone.error?.issues[0]).toMatchObject({ path: ['clientKey'], message: 'clientCert and clientKey go together' });
  });

  it('hands instances the CA text and the agent certificate paths through userData', () => {
    const tls = ServerTls.load({ cert: serverPair.cert, key: serverPair.key, ca: ca.cert, agentCert: clientPair.cert, agentKey: clientPair.key }, { clock: new SystemClock(), logger: pino({ level: 'silent' }) });
    try {
      expect(tls.agentUserData()).toEqual({ DROVER_SERVER_CA: ca.pem, DROVER_AGENT_CERT: clientPair.cert, DROVER_AGENT_KEY: clientPair.key });
      expect(tls.httpsOptions()).toMatchObject({ requestCert: false });
    } finally {
      tls.close();
    }
  });
});
