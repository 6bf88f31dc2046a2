/**
 * Where the CLI sends its token: the listed replicas in order, redirects only among them and never
 * from https to http, and https verified against a private CA (`--ca`) with an optional client
 * certificate. The built CLI runs as a real process against small node:http/node:https servers on
 * 127.0.0.1 that answer what each test needs and record every request they get.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, requireBuild } from '../e2e/process-harness.js';
import { runCli } from './run-cli.js';
import { makeTestPki, type TestPki } from './tls-fixture.js';

const TOKEN = 'tok-0123456789abcdef';

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  body: string;
  /** Common name of the client certificate the TLS server verified, if any. */
  clientCn: string | null;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

interface FakeServer {
  url: string;
  seen: Seen[];
  /** Requests that carried an Authorization header. */
  tokens(): string[];
}

const open: Array<http.Server | https.Server> = [];
let pki: TestPki;

beforeAll(() => {
  requireBuild();
  pki = makeTestPki(mkdtempSync(join(tmpdir(), 'drover-cli-pki-')));
});
afterEach(async () => {
  for (const s of open.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

/** An http (or, with `tls`, https) server on 127.0.0.1 that records each request and lets `handler` answer it. */
async function fakeServer(handler: Handler, tls?: https.ServerOptions): Promise<FakeServer> {
  const seen: Seen[] = [];
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const socket = req.socket as TLSSocket;
      const cn = tls && socket.authorized ? socket.getPeerCertificate().subject.CN : null;
      seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization, body, clientCn: typeof cn === 'string' ? cn : null });
      handler(req, res, body);
    });
  };
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  open.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    seen,
    tokens: () => seen.flatMap((s) => (s.authorization ? [s.authorization] : [])),
  };
}

function json(status: number, body: unknown): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
}

/** Answers as a follower does (src/server/routing.ts): 307 to the same path on `leader()`. */
function redirectTo(leader: () => string): Handler {
  return (req, res) => {
    res.writeHead(307, { location: `${leader()}${req.url ?? ''}`, 'x-drover-leader': leader(), 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: `this replica does not lead; the leader is ${leader()}`, leader: leader() }));
  };
}

const scaled = json(200, { size: 3, previousSize: 2 });
const tlsOptions = (): https.ServerOptions => ({ cert: pki.serverCert, key: pki.serverKey });

describe('drover CLI: servers, redirects and TLS', { timeout: 60_000 }, () => {
  it('follows a follower’s redirect to a listed replica, with the token, and the change reaches it', async () => {
    let leaderUrl = '';
    const leader = await fakeServer(scaled);
    leaderUrl = leader.url;
    const follower = await fakeServer(redirectTo(() => leaderUrl));
    // A trailing slash on a listed server does not change its origin.
    const res = await runCli(['scale', 'default/web', '3', '--server', `${follower.url}/, ${leader.url}/`, '--token', TOKEN]);
    expect(res.status, res.stderr).toBe(0);
    expect(res.stdout).toContain('default/web scaled from 2 to 3');
    expect(follower.seen.map((s) => s.method)).toEqual(['PUT']);
    expect(leader.seen).toEqual([expect.objectContaining({ method: 'PUT', path: '/v1/groups/default/web/size', authorization: `Bearer ${TOKEN}`, body: '{"size":3}' })]);
  });

  it('refuses a redirect to a server that is not listed, naming it, and the token never reaches it', async () => {
    const elsewhere = await fakeServer(scaled);
    // Same address, other name: the origin is what counts, not where it resolves.
    const target = elsewhere.url.replace('127.0.0.1', 'localhost');
    const follower = await fakeServer(redirectTo(() => target));
    const res = await runCli(['scale', 'default/web', '3', '--token', TOKEN], { DROVER_SERVER: follower.url });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(
      `PUT /v1/groups/default/web/size: the server at ${follower.url} redirected to ${target}, which is not one of the --server replicas; not following (the token would leave)`,
    );
    expect(elsewhere.seen).toEqual([]);
    expect(follower.tokens()).toEqual([`Bearer ${TOKEN}`]);
  });

  it('compares origins with default ports normalised: a redirect to https://host:443 counts as the listed https://host', async () => {
    // The listed leader does not exist (.invalid never resolves): being followed shows as "cannot reach" it, not a refusal.
    const follower = await fakeServer(redirectTo(() => 'https://LEADER.invalid:443'));
    const res = await runCli(['drain', 'force', 'i-1', '--server', `${follower.url},https://leader.invalid/`, '--token', TOKEN]);
    expect(res.status, res.stderr).toBe(3);
    expect(res.stderr).toMatch(/cannot reach the Drover server at https:\/\/leader\.invalid:443, the leader that http:\/\/127\.0\.0\.1:\d+ redirected to: (ENOTFOUND|EAI_AGAIN)/);
  });

  it('never follows a redirect from https to http, even to a listed replica', async () => {
    const plain = await fakeServer(scaled);
    const secure = await fakeServer(redirectTo(() => plain.url), tlsOptions());
    const res = await runCli(['scale', 'default/web', '3', '--server', `${secure.url},${plain.url}`, '--ca', pki.caFile, '--token', TOKEN]);
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(`the server at ${secure.url} redirected to ${plain.url}, from https to http; not following (the token would travel unencrypted)`);
    expect(plain.seen).toEqual([]);
  });

  it('gives up after 3 redirects among listed replicas', async () => {
    let self = '';
    const looping = await fakeServer(redirectTo(() => self));
    self = looping.url;
    const res = await runCli(['drain', 'ack', 'i-1', '--server', looping.url]);
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(`redirected more than 3 times (last from ${looping.url} to ${looping.url}); not following`);
    expect(looping.seen).toHaveLength(4);
  });

  it('tries the next listed replica when the first refuses connections, for requests and for the event stream', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const live = await fakeServer((req, res) => {
      if (req.url === '/v1/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: hello\ndata: {}\n\n');
        res.end('event: leader\ndata: {"leader":true}\n\n');
        return;
      }
      json(200, [])(req, res, '');
    });
    const status = await runCli(['status'], { DROVER_SERVER: `${dead},${live.url}`, DROVER_TOKEN: TOKEN });
    expect(status.status, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^GROUP\s+SIZE/);
    const events = await runCli(['events', '-o', 'json'], { DROVER_SERVER: `${dead},${live.url}`, DROVER_TOKEN: TOKEN });
    expect(events.status, events.stderr).toBe(0);
    expect(events.stdout.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ type: 'leader', data: { leader: true } }]);
    expect(live.seen.map((s) => [s.path, s.authorization])).toEqual([
      ['/v1/groups', `Bearer ${TOKEN}`],
      ['/v1/events', `Bearer ${TOKEN}`],
    ]);
  });

  it('exits 3 listing every replica tried when none can be reached', async () => {
    const a = `http://127.0.0.1:${await freePort()}`;
    const res = await runCli(['status', '--server', `${a},http://nowhere.invalid:7400`]);
    expect(res.status).toBe(3);
    expect(res.stderr).toMatch(new RegExp(`cannot reach any Drover server \\(tried ${a}: ECONNREFUSED; http://nowhere\\.invalid:7400: (ENOTFOUND|EAI_AGAIN)`));
  });

  it('refuses a server list with a bad entry as a usage error naming it', async () => {
    const cases: Array<[string, RegExp]> = [
      ['http://127.0.0.1:7400,ftp://files.example', /--server: ftp:\/\/files\.example: must be an http:\/\/ or https:\/\/ URL/],
      ['http://127.0.0.1:7400, not a url', /--server: not a URL: not a url/],
      ['https://admin:pw@a.example', /--server: https:\/\/a\.example:443: credentials do not belong in the URL/],
    ];
    for (const [servers, message] of cases) {
      const flag = await runCli(['status', '--server', servers]);
      expect(flag.status, servers).toBe(2);
      expect(flag.stderr).toMatch(message);
      const env = await runCli(['status'], { DROVER_SERVER: servers });
      expect(env.status, servers).toBe(2);
      expect(env.stderr).toMatch(message);
    }
  });

  it('verifies an https server against --ca or DROVER_CA, and refuses it without', async () => {
    const secure = await fakeServer(json(200, []), tlsOptions());
    const untrusted = await runCli(['status', '--server', secure.url, '--token', TOKEN]);
    expect(untrusted.status).toBe(1);
    expect(untrusted.stderr).toMatch(new RegExp(`connecting securely to the Drover server at ${secure.url}: .*(UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN).*--ca FILE`));
    expect(secure.seen).toEqual([]);

    const flag = await runCli(['status', '--server', secure.url, '--token', TOKEN, '--ca', pki.caFile]);
    expect(flag.status, flag.stderr).toBe(0);
    const env = await runCli(['status', '-o', 'json'], { DROVER_SERVER: secure.url, DROVER_TOKEN: TOKEN, DROVER_CA: pki.caFile });
    expect(env.status, env.stderr).toBe(0);
    expect(JSON.parse(env.stdout)).toEqual([]);
    expect(secure.tokens()).toEqual([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]);
  });

  it('presents the client certificate from DROVER_CLIENT_CERT and DROVER_CLIENT_KEY to a server that asks for one', async () => {
    const mutual = await fakeServer(
      (req, res) => {
        const authorized = (req.socket as TLSSocket).authorized;
        json(authorized ? 200 : 403, authorized ? [] : { error: 'no client certificate' })(req, res, '');
      },
      { ...tlsOptions(), ca: pki.ca, requestCert: true, rejectUnauthorized: false },
    );
    const without = await runCli(['status', '--server', mutual.url, '--ca', pki.caFile]);
    expect(without.status).toBe(1);
    expect(without.stderr).toContain('no client certificate (HTTP 403)');
    const withCert = await runCli(['status', '--server', mutual.url, '--ca', pki.caFile], { DROVER_CLIENT_CERT: pki.clientCertFile, DROVER_CLIENT_KEY: pki.clientKeyFile });
    expect(withCert.status, withCert.stderr).toBe(0);
    expect(mutual.seen.map((s) => s.clientCn)).toEqual([null, 'drover-cli-test']);
  });

  it('refuses unusable TLS files as usage errors naming them', async () => {
    const missing = join(pki.dir, 'missing.pem');
    const noFile = await runCli(['status', '--ca', missing]);
    expect(noFile.status).toBe(2);
    expect(noFile.stderr).toContain(`--ca: reading ${missing}: ENOENT`);
    const notPem = await runCli(['status'], { DROVER_CA: join(pki.dir, 'server.ext') });
    expect(notPem.status).toBe(2);
    expect(notPem.stderr).toContain('not a PEM certificate');
    const half = await runCli(['status'], { DROVER_CLIENT_CERT: pki.clientCertFile });
    expect(half.status).toBe(2);
    expect(half.stderr).toMatch(/give both --client-cert and --client-key/);
  });
});
