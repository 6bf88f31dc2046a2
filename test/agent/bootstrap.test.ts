/**
 * The agent's side of the bootstrap exchange (CredentialSource) against scripted servers on
 * loopback and the fake IMDS: what it sends, what it retries, what it follows, where it stops,
 * and the credential file it keeps.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CredentialSource, knownCredential, type CredentialConfig } from '../../src/agent/bootstrap.js';
import { agentConfigSchema } from '../../src/agent/config.js';
import { SystemClock } from '../../src/clock/index.js';
import { FakeHetznerMetadata } from './fake-hetzner-metadata.js';
import { FakeImds } from './fake-imds.js';
import { TestLogger } from './harness.js';

const TOKEN = 'tok_0123456789abcdefghijklmnopqrstuvwxyzABCD';

/** A stand-in server: answers each bootstrap request with the next scripted answer (the last one for ever). */
class ScriptedServer {
  readonly server: Server;
  readonly bodies: unknown[] = [];
  url = '';
  constructor(private readonly script: Array<(res: ServerResponse) => void>) {
    this.server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.bodies.push({ path: req.url, method: req.method, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
        const answer = this.script[Math.min(this.bodies.length - 1, this.script.length - 1)]!;
        answer(res);
      });
    });
  }
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => (res: ServerResponse) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
};

let dir: string;
let imds: FakeImds;
const servers: ScriptedServer[] = [];
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drover-bootstrap-'));
  imds = new FakeImds();
  await imds.listen();
  imds.machine('inst-1', { instanceId: 'i-0aaa' });
});
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await imds.close();
  rmSync(dir, { recursive: true, force: true });
});

async function scripted(...script: Array<(res: ServerResponse) => void>): Promise<ScriptedServer> {
  const s = new ScriptedServer(script);
  await s.listen();
  servers.push(s);
  return s;
}

function config(serverUrls: string[], extra: Record<string, unknown> = {}): CredentialConfig {
  return agentConfigSchema.parse({
    instanceId: 'inst-1',
    servers: serverUrls,
    credentialFile: join(dir, 'state', 'credential'),
    bootstrapToken: TOKEN,
    metadata: 'ec2',
    imds: { endpoint: imds.url('inst-1') },
    ...extra,
  });
}

function source(cfg: CredentialConfig, log = new TestLogger()): CredentialSource {
  return new CredentialSource({ config: cfg, clock: new SystemClock(), logger: log, random: () => 0.5, retryInitialMs: 5, retryMaxMs: 20 });
}

describe('bootstrap exchange', () => {
  it('sends its instance id, token and the machine id from IMDS, and keeps the credential in a 0600 file in a 0700 folder', async () => {
    const s = await scripted(json(200, { credential: 'cred-abc' }));
    const cfg = config([s.url]);
    expect(await source(cfg).obtain()).toEqual({ credential: 'cred-abc' });
    expect(s.bodies).toEqual([{ path: '/v1/agent/bootstrap', method: 'POST', body: { instanceId: 'inst-1', token: TOKEN, providerId: 'i-0aaa' } }]);
    const file = cfg.credentialFile!;
    expect(readFileSync(file, 'utf8').trim()).toBe('cred-abc');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
    // From then on (a restart), the file is the credential: nobody is asked.
    expect(knownCredential(cfg, new TestLogger())).toBe('cred-abc');
    expect(await source(cfg).obtain()).toEqual({ credential: 'cred-abc' });
    expect(s.bodies).toHaveLength(1);
  });

  it('sends the server id from Hetzner metadata as the machine id with metadata hetzner', async () => {
    const md = new FakeHetznerMetadata();
    await md.listen();
    try {
      md.machine('srv', { instanceId: '31415926\n' });
      const s = await scripted(json(200, { credential: 'cred-hz' }));
      const cfg = config([s.url], { metadata: 'hetzner', imds: undefined, hetznerMetadata: { endpoint: md.url('srv') } });
      expect(await source(cfg).obtain()).toEqual({ credential: 'cred-hz' });
      expect(s.bodies).toEqual([{ path: '/v1/agent/bootstrap', method: 'POST', body: { instanceId: 'inst-1', token: TOKEN, providerId: '31415926' } }]);
      expect(md.requests).toEqual([{ method: 'GET', key: 'srv', path: '/hetzner/v1/metadata/instance-id' }]);
      // IMDS was not asked.
      expect(imds.requests).toEqual([]);
    } finally {
      await md.close();
    }
  });

  it('retries a Hetzner metadata answer that is not a server id, and posts nothing until it is one', async () => {
    const md = new FakeHetznerMetadata();
    await md.listen();
    try {
      const m = md.machine('srv', { instanceId: 'not-a-number' });
      const s = await scripted(json(200, { credential: 'cred-hz' }));
      const log = new TestLogger();
      const pending = source(config([s.url], { metadata: 'hetzner', imds: undefined, hetznerMetadata: { endpoint: md.url('srv') } }), log).obtain();
      await expect.poll(() => md.requests.length).toBeGreaterThanOrEqual(2);
      expect(s.bodies).toEqual([]);
      expect(log.lines.find((l) => l.msg === 'reading the machine id for the bootstrap failed; retrying')?.obj).toMatchObject({ err: expect.stringMatching(/not a server id/) as unknown });
      m.instanceId = '27';
      expect(await pending).toEqual({ credential: 'cred-hz' });
      expect(s.bodies).toMatchObject([{ body: { providerId: '27' } }]);
    } finally {
      await md.close();
    }
  });

  it('keeps a server URL\'s path prefix', async () => {
    const s = await scripted(json(200, { credential: 'cred-abc' }));
    expect(await source(config([`${s.url}/drover/`])).obtain()).toEqual({ credential: 'cred-abc' });
    expect(s.bodies).toMatchObject([{ path: '/drover/v1/agent/bootstrap' }]);
  });

  it('retries an unreachable server, a 503 and an answer it does not understand, moving through the servers, until it gets the credential', async () => {
    const a = await scripted(json(503, { error: 'not yet' }, { 'retry-after': '2' }), json(200, { nonsense: true }), json(200, { credential: 'cred-a' }));
    const log = new TestLogger();
    // The first server is a closed port.
    const outcome = await source(config(['http://127.0.0.1:1', a.url]), log).obtain();
    expect(outcome).toEqual({ credential: 'cred-a' });
    expect(a.bodies).toHaveLength(3);
    expect(log.lines.filter((l) => l.msg === 'bootstrap request failed; retrying').length).toBeGreaterThanOrEqual(1);
    expect(log.lines.some((l) => l.msg === 'bootstrap not possible yet; retrying' && (l.obj as { status?: number }).status === 503)).toBe(true);
    expect(log.lines.some((l) => l.msg === 'bootstrap answer not understood; retrying')).toBe(true);
  });

  it('retries while IMDS cannot say which machine this is', async () => {
    const s = await scripted(json(200, { credential: 'cred-abc' }));
    imds.failWith = 500;
    const log = new TestLogger();
    const pending = source(config([s.url]), log).obtain();
    await log.next('reading the machine id for the bootstrap failed; retrying');
    imds.failWith = undefined;
    expect(await pending).toEqual({ credential: 'cred-abc' });
  });

  it('follows a 307 to a configured server at once, and never to one it does not know', async () => {
    const leader = await scripted(json(200, { credential: 'from-leader' }));
    const follower = await scripted((res) => res.writeHead(307, { location: `${leader.url}/v1/agent/bootstrap`, 'x-drover-leader': leader.url }).end());
    expect(await source(config([follower.url, leader.url])).obtain()).toEqual({ credential: 'from-leader' });
    expect(follower.bodies).toHaveLength(1);
    expect(leader.bodies).toHaveLength(1);

    const stranger = await scripted(json(200, { credential: 'stolen' }));
    const liar = await scripted((res) => res.writeHead(307, { location: `${stranger.url}/v1/agent/bootstrap` }).end(), json(200, { credential: 'from-liar' }));
    const log = new TestLogger();
    expect(await source(config([liar.url], { credentialFile: join(dir, 'other', 'credential') }), log).obtain()).toEqual({ credential: 'from-liar' });
    expect(stranger.bodies).toEqual([]);
    expect(log.lines.some((l) => l.msg === 'bootstrap redirected to a server not configured; not following')).toBe(true);
  });

  it('stops at a 401 or a 403 with the server\'s reason, logged as an error, and keeps no file', async () => {
    for (const [status, error] of [
      [401, 'bootstrap token refused: it expired at 2026-01-01T00:30:00.000Z'],
      [403, 'bootstrap refused: instance inst-1 is not the machine i-0aaa (its provider id differs)'],
    ] as const) {
      const s = await scripted(json(status, { error }));
      const log = new TestLogger();
      const cfg = config([s.url]);
      expect(await source(cfg, log).obtain()).toEqual({ refused: `bootstrap refused by ${s.url}/v1/agent/bootstrap (HTTP ${status}): ${error}` });
      expect(s.bodies).toHaveLength(1);
      expect(log.lines.find((l) => l.msg === 'bootstrap refused: the agent cannot get its credential')).toMatchObject({ level: 'error', obj: { status, reason: error } });
      expect(existsSync(cfg.credentialFile!)).toBe(false);
    }
  });

  it('refuses to start without a credential file or a token to get one', async () => {
    const cfg = agentConfigSchema.parse({ instanceId: 'inst-1', servers: ['http://127.0.0.1:1'], credentialFile: join(dir, 'missing') });
    expect(await source(cfg).obtain()).toEqual({ refused: `no credential: ${join(dir, 'missing')} holds none and there is no bootstrapToken to obtain one` });
  });

  it('takes a credential file readable by others, and makes it 0600', () => {
    const file = join(dir, 'credential');
    writeFileSync(file, 'cred-x\n', { mode: 0o644 });
    const log = new TestLogger();
    expect(knownCredential({ credentialFile: file }, log)).toBe('cred-x');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(log.lines.some((l) => l.msg === 'credential file readable by others; made 0600')).toBe(true);
  });

  it('stops retrying when stopped', async () => {
    const s = await scripted(json(503, { error: 'not yet' }));
    const src = new CredentialSource({ config: config([s.url]), clock: new SystemClock(), logger: new TestLogger(), random: () => 0.5, retryInitialMs: 60_000, retryMaxMs: 60_000 });
    const pending = src.obtain();
    await expect.poll(() => s.bodies.length).toBe(1);
    src.stop();
    expect(await pending).toEqual({ stopped: true });
  });
});

describe('agent config credentials', () => {
  const base = { instanceId: 'i', servers: ['http://127.0.0.1:7400'] };
  const issues = (extra: Record<string, unknown>): string[] => {
    const r = agentConfigSchema.safeParse({ ...base, ...extra });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('needs exactly one of credential and credentialFile', () => {
    expect(issues({ credential: 'c' })).toEqual([]);
    expect(issues({ credentialFile: '/var/lib/drover/credential' })).toEqual([]);
    expect(issues({})).toEqual(['credential: give exactly one of credential and credentialFile (with bootstrapToken for the first start)']);
    expect(issues({ credential: 'c', credentialFile: '/f' })).toEqual(['credential: give exactly one of credential and credentialFile (with bootstrapToken for the first start)']);
  });

  it('takes a bootstrap token only with a credential file and EC2 metadata, and IMDS settings only with EC2 metadata', () => {
    expect(issues({ credentialFile: '/f', bootstrapToken: TOKEN, metadata: 'ec2' })).toEqual([]);
    expect(issues({ credential: 'c', bootstrapToken: TOKEN, metadata: 'ec2' })).toEqual(['bootstrapToken: needs credentialFile: where the credential it is exchanged for is kept']);
    expect(issues({ credentialFile: '/f', bootstrapToken: TOKEN })).toEqual(['bootstrapToken: needs metadata "ec2" or "hetzner": the exchange proves the machine by the id its metadata gives']);
    expect(issues({ credentialFile: '/f', bootstrapToken: TOKEN, metadata: 'file' })).toEqual(['bootstrapToken: needs metadata "ec2" or "hetzner": the exchange proves the machine by the id its metadata gives']);
    expect(issues({ credential: 'c', imds: { endpoint: 'http://127.0.0.1:9' } })).toEqual(['imds: is read only with metadata "ec2"']);
    expect(issues({ credential: 'c', metadata: 'ec2', noticeFile: '/n' })).toEqual(['noticeFile: is read only with metadata "file" (with "ec2", notices come from IMDS)']);
    expect(issues({ credential: 'c', metadata: 'ec2', imds: { endpoint: 'ftp://x' } })).toEqual(['imds.endpoint: must be an http:// or https:// URL']);
    expect(issues({ credentialFile: '/f', bootstrapToken: 'short', metadata: 'ec2' })).toEqual(['bootstrapToken: must be a bootstrap token (16-256 base64url characters)']);
  });

  it('takes a bootstrap token with Hetzner metadata too, Hetzner metadata settings only with it, and no notice file beside it', () => {
    expect(issues({ credentialFile: '/f', bootstrapToken: TOKEN, metadata: 'hetzner' })).toEqual([]);
    expect(issues({ credentialFile: '/f', bootstrapToken: TOKEN, metadata: 'hetzner', hetznerMetadata: { endpoint: 'http://127.0.0.1:9/srv' } })).toEqual([]);
    expect(issues({ credentialFile: '/f', bootstrapToken: TOKEN, metadata: 'hetzner', hetznerMetadata: {} })).toEqual([]);
    for (const metadata of [undefined, 'file', 'ec2']) {
      expect(issues({ credential: 'c', metadata, hetznerMetadata: { endpoint: 'http://127.0.0.1:9' } }), String(metadata)).toEqual(['hetznerMetadata: is read only with metadata "hetzner"']);
    }
    expect(issues({ credential: 'c', metadata: 'hetzner', imds: { endpoint: 'http://127.0.0.1:9' } })).toEqual(['imds: is read only with metadata "ec2"']);
    expect(issues({ credential: 'c', metadata: 'hetzner', noticeFile: '/n' })).toEqual(['noticeFile: is read only with metadata "file" (Hetzner Cloud has no termination notices)']);
    expect(issues({ credential: 'c', metadata: 'file', noticeFile: '/n' })).toEqual([]);
    expect(issues({ credential: 'c', metadata: 'hetzner', hetznerMetadata: { endpoint: 'ftp://x' } })).toEqual(['hetznerMetadata.endpoint: must be an http:// or https:// URL']);
    expect(issues({ credential: 'c', metadata: 'hetzner', hetznerMetadata: { endpoint: 'not a url' } })).toEqual(['hetznerMetadata.endpoint: must be an http:// URL such as "http://169.254.169.254"']);
    expect(issues({ credential: 'c', metadata: 'hetzner', hetznerMetadata: { endpoint: 'http://x', token: 'y' } })).toHaveLength(1);
    expect(issues({ credential: 'c', metadata: 'gcp' })).toEqual(['metadata: must be "file", "ec2" or "hetzner"']);
  });
});
