/**
 * connectEtcd against real etcd processes that are secured: one serving clients over TLS with
 * client-certificate authentication (certificates made by the test), one with etcd's user
 * authentication. The elector and the operator state run on them as in production.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Range, type Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { SystemClock } from '../../src/clock/index.js';
import { EtcdElector, connectEtcd, type EtcdSecurity } from '../../src/leader/index.js';
import { EtcdOperatorState, keys } from '../../src/state/index.js';
import { makeCa, makeLeaf, type Ca, type CertFiles } from '../helpers/certs.js';
import { EtcdCluster, describeWithEtcd } from '../helpers/etcd-cluster.js';

const clock = new SystemClock();
const clients: Etcd3[] = [];
const stops: Array<() => Promise<void>> = [];
let dir: string;

function client(endpoints: string[], security: EtcdSecurity): Etcd3 {
  const c = connectEtcd(endpoints, security);
  clients.push(c);
  return c;
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An elector and the operator state on `c`; resolves once it leads and has written and read back a size. */
async function leadAndWrite(c: Etcd3, shardId: string): Promise<void> {
  const elector = new EtcdElector({ client: c, shardId, ttlMs: 2_000, address: () => 'https://127.0.0.1:7400', clock });
  const state = new EtcdOperatorState({ client: c, shardId, fence: () => elector.fence(), clock });
  stops.push(() => elector.stop(), () => state.close());
  await state.start();
  await elector.start();
  await until('the elector leads', () => elector.isLeader());
  const value = { size: 4, base: 2, at: clock.now().toISOString(), by: 'operator:test' };
  await state.set(keys.size('default', 'web'), value);
  expect(await c.get(`/drover/${shardId}/state/size/default/web`).json()).toEqual(value);
}

afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  for (const c of clients.splice(0)) c.close();
});

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'drover-etcd-security-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeWithEtcd(
  'etcd over TLS with client certificates',
  () => {
    let cluster: EtcdCluster;
    let ca: Ca;
    let client1: CertFiles;
    let otherCa: Ca;
    let stranger: CertFiles;

    beforeAll(async () => {
      ca = makeCa(dir, 'etcd-ca');
      const server = makeLeaf(dir, ca, 'etcd-server');
      client1 = makeLeaf(dir, ca, 'drover-client', { usage: ['clientAuth'] });
      otherCa = makeCa(dir, 'other-ca');
      stranger = makeLeaf(dir, otherCa, 'stranger', { usage: ['clientAuth'] });
      cluster = await EtcdCluster.start(1, { tls: { ca: ca.cert, cert: server.cert, key: server.key, clientCertAuth: true } });
    }, 30_000);
    afterAll(() => cluster?.close());

    it('elects and writes operator state over TLS, verifying etcd against leader.tls.ca and presenting the client certificate', async () => {
      expect(cluster.endpoints[0]).toMatch(/^https:\/\//);
      await leadAndWrite(client(cluster.endpoints, { tls: { ca: ca.cert, cert: client1.cert, key: client1.key } }), 'tls');
    });

    it('refuses an etcd whose certificate another CA signed', async () => {
      const c = client(cluster.endpoints, { tls: { ca: otherCa.cert, cert: client1.cert, key: client1.key } });
      await expect(c.get('/drover/x').string()).rejects.toThrow(/unable to verify the first certificate/);
    });

    it('is refused by etcd without a client certificate, or with one from another CA', async () => {
      // etcd ends the handshake with alert 42 (bad certificate).
      await expect(client(cluster.endpoints, { tls: { ca: ca.cert } }).get('/drover/x').string()).rejects.toThrow(/bad certificate/);
      await expect(client(cluster.endpoints, { tls: { ca: ca.cert, cert: stranger.cert, key: stranger.key } }).get('/drover/x').string()).rejects.toThrow(/bad certificate/);
    });
  },
  { timeout: 60_000 },
);

describeWithEtcd(
  'etcd with user authentication',
  () => {
    let cluster: EtcdCluster;
    const passwordFile = (): string => join(dir, 'etcd-password');

    beforeAll(async () => {
      cluster = await EtcdCluster.start(1);
      // etcdctl is not packaged with etcd-server: the client's own API sets auth up.
      const admin = connectEtcd(cluster.endpoints);
      try {
        await admin.role('root').create();
        await admin.user('root').create('root-password');
        await admin.user('root').addRole('root');
        await admin.role('drover').create();
        await admin.role('drover').grant({ permission: 'Readwrite', range: Range.prefix('/drover/') });
        await admin.user('drover').create('s3cret drover password');
        await admin.user('drover').addRole('drover');
        await admin.auth.authEnable();
      } finally {
        admin.close();
      }
      // As an operator's editor leaves it: with a trailing newline, which is not part of the password.
      writeFileSync(passwordFile(), 's3cret drover password\n', { mode: 0o600 });
    }, 30_000);
    afterAll(() => cluster?.close());

    it('elects and writes operator state as the configured user, its password read from leader.auth.passwordFile', async () => {
      await leadAndWrite(client(cluster.endpoints, { auth: { username: 'drover', passwordFile: passwordFile() } }), 'auth');
    });

    it('is refused with a wrong password, and without authentication', async () => {
      const wrong = join(dir, 'wrong-password');
      writeFileSync(wrong, 'not it\n');
      await expect(client(cluster.endpoints, { auth: { username: 'drover', passwordFile: wrong } }).get('/drover/x').string()).rejects.toThrow(/authentication failed/i);
      await expect(client(cluster.endpoints, {}).get('/drover/x').string()).rejects.toThrow(/user name is empty|permission denied/i);
    });
  },
  { timeout: 60_000 },
);

it('names the setting and the file when a TLS or auth file cannot be used', () => {
  const missing = join(tmpdir(), `drover-missing-${process.pid}.pem`);
  expect(() => connectEtcd(['https://127.0.0.1:2379'], { tls: { ca: missing } })).toThrow(`reading leader.tls.ca ${missing}: ENOENT`);
  expect(() => connectEtcd(['http://127.0.0.1:2379'], { tls: { ca: missing } })).toThrow('connecting to etcd: leader.tls is set but endpoint http://127.0.0.1:2379 is not https://');
  const notPem = join(dir, 'not-a-ca.pem');
  writeFileSync(notPem, 'hello\n');
  expect(() => connectEtcd(['https://127.0.0.1:2379'], { tls: { ca: notPem } })).toThrow(`reading leader.tls.ca ${notPem}: no PEM certificate`);
  expect(() => connectEtcd(['http://127.0.0.1:2379'], { auth: { username: 'drover', passwordFile: missing } })).toThrow(`reading leader.auth.passwordFile ${missing}: ENOENT`);
  const blank = join(dir, 'blank-password');
  writeFileSync(blank, ' \n');
  expect(() => connectEtcd(['http://127.0.0.1:2379'], { auth: { username: 'drover', passwordFile: blank } })).toThrow(`reading leader.auth.passwordFile ${blank}: the file is empty`);
});
