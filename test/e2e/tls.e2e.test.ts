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
import { CLI, requireBuild, waitFor } from './process-harness.js';

interface InstanceRow {
  id: string;
  connected: boolean;
  healthAt: string | null;
}

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
  it('its agents verify the server against server.tls.ca and present server.tls.agentCert; they connect over wss:// and report health', async () => {
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
        },
        provider: { kind: 'local', killGracePeriod: '2s' },
        shard: { id: 'tls-e2e', healthCheckInterval: '1s', missedHealthThreshold: 3, startupTimeout: '30s', defaultDrainTimeout: '10s' },
        templates: { web: { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'] } },
        groups: { default: { web: { size: 2, template: 'web' } } },
      }),
    );
    const log = new RecordingLog();
    server = await startDroverServer({ configPath, logger: log.logger, agentCommand: [process.execPath, CLI, 'agent'] });
    expect(server.url).toMatch(/^https:\/\//);
    const client = { ca: ca.pem, cert: readFileSync(operatorPair.cert), key: readFileSync(operatorPair.key) };
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
  });
});
