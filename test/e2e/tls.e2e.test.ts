/**
 * End to end over TLS: a Drover server with the local provider, serving HTTPS/WSS with mutual
 * TLS; its instances are real processes running the built `drover agent`, which learn the CA and
 * their client certificate through userData (DROVER_SERVER_CA, DROVER_AGENT_CERT/KEY) and the
 * agent config the provider writes, and connect over wss://.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startDroverServer, type DroverServer } from '../../src/app/drover-server.js';
import { processesWithEnv } from '../../src/providers/local/proc.js';
import { makeCa, makeLeaf } from '../helpers/certs.js';
import { RecordingLog, httpsCall } from '../helpers/tls-client.js';
import { runCli } from '../cli/run-cli.js';
import { CLI, requireBuild, waitFor } from './process-harness.js';
import { createHash } from 'node:crypto';

interface InstanceRow {
  id: string;
  connected: boolean;
  healthAt: string | null;
}

const VIEWER = 'viewer-token-0123456789';
const OPERATOR = 'operator-token-0123456789';

let dir: string | undefined;
let server: DroverServer | undefined;

beforeAll(() => requireBuild());
afterEach(async () => {
  await server?.stop();
  server = undefined;
  if (!dir) return;
  const stateDir = join(dir, 'data', 'local');
  // Instances outlive the server that made them: end every process of this test's instances.
  for (const id of existsSync(stateDir) ? readdirSync(stateDir) : []) {
    for (const p of processesWithEnv('DROVER_INSTANCE_ID', id)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('drover server with server.tls and the local provider', { timeout: 120_000 }, () => {
  it('its agents verify the server against server.tls.ca and present server.tls.agentCert; they connect over wss:// and report health; the CLI works with scoped tokens', async () => {
    dir = mkdtempSync(join(tmpdir(), 'drover-tls-e2e-'));
    const ca = makeCa(dir, 'ca');
    const serverPair = makeLeaf(dir, ca, 'server', { usage: ['serverAuth'] });
    const agentPair = makeLeaf(dir, ca, 'agent', { usage: ['clientAuth'] });
    const operatorPair = makeLeaf(dir, ca, 'operator', { usage: ['clientAuth'] });
    const configPath = join(dir, 'drover.yaml');
    writeFileSync(
      configPath,
      stringify({
        server: {
          listen: '127.0.0.1:0',
          dataDir: join(dir, 'data'),
          tls: { cert: serverPair.cert, key: serverPair.key, ca: ca.cert, clientCa: ca.cert, agentCert: agentPair.cert, agentKey: agentPair.key },
          tokens: [
            { name: 'grafana', role: 'viewer', sha256: createHash('sha256').update(VIEWER).digest('hex') },
            { name: 'team-default', role: 'operator', tenants: ['default'], sha256: createHash('sha256').update(OPERATOR).digest('hex') },
          ],
        },
        provider: { kind: 'local', killGracePeriod: '2s' },
        shard: { id: 'tls-e2e', healthCheckInterval: '1s', missedHealthThreshold: 3, startupTimeout: '30s', defaultDrainTimeout: '10s' },
        templates: { web: { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'] } },
        groups: { default: { web: { size: 2, template: 'web' } }, other: { web: { size: 1, template: 'web' } } },
      }),
    );
    const log = new RecordingLog();
    server = await startDroverServer({ configPath, logger: log.logger, agentCommand: [process.execPath, CLI, 'agent'] });
    expect(server.url).toMatch(/^https:\/\//);
    const client = { ca: ca.pem, cert: readFileSync(operatorPair.cert), key: readFileSync(operatorPair.key), token: VIEWER };
    const url = server.url;
    const rows = await waitFor(
      'both instances connected and healthy',
      async () => (await httpsCall<InstanceRow[]>(`${url}/v1/instances?tenant=default&group=web`, client)).body,
      (r) => r.length === 2 && r.every((i) => i.connected && i.healthAt !== null),
      60_000,
    );
    // What the provider wrote for the agent: the CA's text and the paths of the certificate
    // files — never the private key itself.
    const agentConfig = readFileSync(join(dir, 'data', 'local', rows[0]!.id, 'agent.json'), 'utf8');
    const parsed = JSON.parse(agentConfig) as Record<string, unknown>;
    expect(parsed.servers).toEqual([url]);
    expect(parsed.serverCa).toBe(ca.pem);
    expect(parsed.clientCert).toBe(agentPair.cert);
    expect(parsed.clientKey).toBe(agentPair.key);
    expect(agentConfig).not.toContain('PRIVATE KEY');

    // The CLI over HTTPS with mutual TLS: a viewer reads and is refused a change; an operator of
    // tenant default scales its group and sees nothing of tenant other.
    const tlsEnv = { DROVER_SERVER: url, DROVER_CA: ca.cert, DROVER_CLIENT_CERT: operatorPair.cert, DROVER_CLIENT_KEY: operatorPair.key };
    const status = await runCli(['status', '-o', 'json'], { ...tlsEnv, DROVER_TOKEN: VIEWER });
    expect(status.status, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as Array<{ tenant: string }>).map((g) => g.tenant).sort()).toEqual(['default', 'other']);
    const refused = await runCli(['scale', 'default/web', '3'], { ...tlsEnv, DROVER_TOKEN: VIEWER });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/grafana \(role viewer\) may not do this/);
    const scoped = await runCli(['status', '-o', 'json'], { ...tlsEnv, DROVER_TOKEN: OPERATOR });
    expect((JSON.parse(scoped.stdout) as Array<{ tenant: string }>).map((g) => g.tenant)).toEqual(['default']);
    const scaled = await runCli(['scale', 'default/web', '3', '--wait', '--timeout', '60s'], { ...tlsEnv, DROVER_TOKEN: OPERATOR, USER: 'alice' });
    expect(scaled.status, scaled.stderr).toBe(0);
    expect(server.db.listAudit({ tenant: 'default', group: 'web' }).find((a) => a.action === 'scale')?.actor).toBe('operator:team-default/alice');
    const elsewhere = await runCli(['scale', 'other/web', '2'], { ...tlsEnv, DROVER_TOKEN: OPERATOR });
    expect(elsewhere.status).toBe(1);
    expect(elsewhere.stderr).toMatch(/HTTP 404/);
    // Without the CA the CLI does not trust the server.
    const untrusted = await runCli(['status'], { DROVER_SERVER: url, DROVER_TOKEN: VIEWER, DROVER_CLIENT_CERT: operatorPair.cert, DROVER_CLIENT_KEY: operatorPair.key });
    expect(untrusted.status).toBe(1);
    expect(untrusted.stderr).toMatch(/--ca/);
  });
});
