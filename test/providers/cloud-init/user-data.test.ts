/**
 * The user data cloud providers hand their instances: a bash script cloud-init runs (or a
 * multipart with the operator's own part), with the agent config embedded where the script writes
 * it as it is and where `agentConfigFromUserData` finds it again.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../../src/errors/index.js';
import {
  AGENT_CONFIG_MARKER,
  AGENT_PATHS,
  MAX_USER_DATA_BYTES,
  USER_DATA_MAX_BYTES,
  agentConfigFromUserData,
  defaultInstallCommand,
  renderAgentUserData,
  type AgentUserDataInput,
} from '../../../src/providers/cloud-init/index.js';
import { VERSION } from '../../../src/util/version.js';
import { makeCa } from '../../helpers/certs.js';

const TOKEN = 'tok_0123456789abcdefghijklmnopqrstuvwxyzABCD';

function input(extra: Partial<AgentUserDataInput> = {}): AgentUserDataInput {
  return {
    instanceId: 'inst-0001',
    servers: ['https://drover-1.internal:7400', 'https://drover-2.internal:7400'],
    bootstrapToken: TOKEN,
    metadata: 'ec2',
    agent: { command: ['/opt/app/serve', '--port', '8080'], healthCommand: ['curl', '-fs', 'localhost:8080/health'], healthCheckIntervalMs: 10_000 },
    ...extra,
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'drover-cloud-init-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The script's write_agent_config function, run by bash: what it would write to agent.json. */
function writtenConfig(script: string, cwd: string): string {
  const lines = script.split('\n');
  const start = lines.indexOf('write_agent_config() {');
  const end = lines.indexOf('}', lines.indexOf(AGENT_CONFIG_MARKER, start + 2));
  expect(start).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(start);
  return execFileSync('bash', ['-c', `set -euo pipefail\n${lines.slice(start, end + 1).join('\n')}\nwrite_agent_config`], { cwd, encoding: 'utf8' });
}

describe('agent user data', () => {
  it('is a bash script that installs Node.js if missing, this version of the agent with better-sqlite3\'s install script allowed, its config, and a hardened service', () => {
    const text = renderAgentUserData(input());
    expect(text.startsWith('#!/bin/bash\n')).toBe(true);
    expect(spawnSync('bash', ['-n'], { input: text }).status).toBe(0);
    expect(text).toContain('set -euo pipefail');
    expect(text).toContain('https://deb.nodesource.com/setup_20.x');
    expect(text).toContain('https://rpm.nodesource.com/setup_20.x');
    expect(text).toContain(`\nnpm install -g --allow-scripts=better-sqlite3 drover@${VERSION}\n`);
    expect(defaultInstallCommand('1.2.3')).toBe('npm install -g --allow-scripts=better-sqlite3 drover@1.2.3');
    for (const line of ['User=drover', 'Restart=always', 'RestartPreventExitStatus=2 3 4', 'StateDirectory=drover-agent', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'ProtectSystem=full', 'PrivateTmp=yes', `ExecStart=/usr/bin/env drover agent --config ${AGENT_PATHS.config}`]) {
      expect(text.split('\n'), line).toContain(line);
    }
    expect(text).toContain(`chmod 0600 ${AGENT_PATHS.config}.new`);
    expect(text).toContain('systemctl enable --now drover-agent.service');
  });

  it('embeds the agent config, which agentConfigFromUserData gives back as the agent will read it', () => {
    const plain = renderAgentUserData(input());
    const config = agentConfigFromUserData(plain);
    expect(config).toEqual({
      instanceId: 'inst-0001',
      servers: ['https://drover-1.internal:7400', 'https://drover-2.internal:7400'],
      credentialFile: AGENT_PATHS.credentialFile,
      bootstrapToken: TOKEN,
      metadata: 'ec2',
      selfSocket: AGENT_PATHS.selfSocket,
      command: ['/opt/app/serve', '--port', '8080'],
      healthCommand: ['curl', '-fs', 'localhost:8080/health'],
      healthCheckIntervalMs: 10_000,
    });
    // As EC2's API carries it, too.
    expect(agentConfigFromUserData(Buffer.from(plain).toString('base64'))).toEqual(config);
    // And bash writes exactly that.
    expect(JSON.parse(writtenConfig(plain, dir))).toEqual(config);
  });

  it('carries the servers\' CA through, PEM newlines and all', () => {
    const ca = makeCa(dir, 'drover-ca');
    const text = renderAgentUserData(input({ serverCa: ca.pem }));
    expect(agentConfigFromUserData(text).serverCa).toBe(ca.pem);
    expect((JSON.parse(writtenConfig(text, dir)) as { serverCa: string }).serverCa).toBe(ca.pem);
  });

  it('renders the same bytes for the same input', () => {
    expect(renderAgentUserData(input({ extraUserData: '#cloud-config\npackages: [jq]\n' }))).toBe(renderAgentUserData(input({ extraUserData: '#cloud-config\npackages: [jq]\n' })));
  });

  it('writes hostile values as they are: quotes, $(), backticks, newlines and the delimiter itself never reach the shell', () => {
    const pwned = join(dir, 'pwned');
    const hostile = [
      `it's "quoted"`,
      `$(touch ${pwned})`,
      `\`touch ${pwned}\``,
      `line1\n${AGENT_CONFIG_MARKER}\ntouch ${pwned}`,
      `'; touch ${pwned}; echo '`,
      '${HOME} $HOME \\ \\n',
      'ünïcødé ✓',
    ];
    const text = renderAgentUserData(input({ agent: { command: ['/bin/echo', ...hostile], drainCommand: ['/bin/sh', '-c', `echo "${hostile[1]}"`] } }));
    expect(spawnSync('bash', ['-n'], { input: text }).status).toBe(0);
    const written = JSON.parse(writtenConfig(text, dir)) as { command: string[]; drainCommand: string[] };
    expect(written.command).toEqual(['/bin/echo', ...hostile]);
    expect(written.drainCommand).toEqual(['/bin/sh', '-c', `echo "${hostile[1]}"`]);
    expect(existsSync(pwned)).toBe(false);
    expect(agentConfigFromUserData(text).command).toEqual(['/bin/echo', ...hostile]);
  });

  it('is a multipart when the operator adds user data of its own: the operator\'s part first, then the agent\'s script', () => {
    const extra = '#cloud-config\npackages:\n  - jq\n';
    const text = renderAgentUserData(input({ extraUserData: extra }));
    const boundary = /^Content-Type: multipart\/mixed; boundary="([^"]+)"\nMIME-Version: 1\.0\n\n/.exec(text)?.[1];
    expect(boundary).toMatch(/^==DROVER_[0-9a-f]{32}==$/);
    const parts = text.split(`--${boundary}`);
    // preamble, the two parts, and the closing "--".
    expect(parts).toHaveLength(4);
    expect(parts[3]).toBe('--\n');
    expect(parts[1]).toContain('Content-Type: text/cloud-config; charset="utf-8"');
    expect(parts[1]).toContain('filename="part-001-operator"');
    expect(parts[1]!.endsWith(`\n\n${extra}`)).toBe(true);
    expect(parts[2]).toContain('Content-Type: text/x-shellscript; charset="utf-8"');
    expect(parts[2]).toContain('filename="part-002-drover-agent.sh"');
    const script = parts[2]!.slice(parts[2]!.indexOf('#!/bin/bash'));
    expect(spawnSync('bash', ['-n'], { input: script }).status).toBe(0);
    expect(agentConfigFromUserData(text).instanceId).toBe('inst-0001');

    expect(renderAgentUserData(input({ extraUserData: '#!/bin/sh\necho hi\n' }))).toContain('Content-Type: text/x-shellscript; charset="utf-8"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\nContent-Disposition: attachment; filename="part-001-operator"');
    expect(() => renderAgentUserData(input({ extraUserData: 'just some text' }))).toThrow(/extraUserData must start with #cloud-config/);
  });

  it('refuses more than 16 KB of user data, naming the largest part', () => {
    const base = Buffer.byteLength(renderAgentUserData(input({ extraUserData: '#cloud-config\n' })));
    const room = MAX_USER_DATA_BYTES - base;
    // Exactly at the limit is fine; one byte more is not.
    const fits = `#cloud-config\n#${'x'.repeat(room - 2)}\n`;
    expect(Buffer.byteLength(renderAgentUserData(input({ extraUserData: fits })))).toBe(MAX_USER_DATA_BYTES);
    const tooBig = `#cloud-config\n#${'x'.repeat(room - 1)}\n`;
    expect(() => renderAgentUserData(input({ extraUserData: tooBig }))).toThrow(
      new InvalidRequestError(`rendering the agent user data for instance inst-0001: ${MAX_USER_DATA_BYTES + 1} bytes, more than the ${MAX_USER_DATA_BYTES} EC2 allows; the largest part is extraUserData (${room + 15} bytes)`),
    );
    expect(() => renderAgentUserData(input({ agent: { command: ['x'.repeat(20_000)] } }))).toThrow(/the largest part is agent\.command/);
  });

  it('renders for Hetzner Cloud the same script with metadata hetzner in the agent config', () => {
    const hetzner = renderAgentUserData(input({ metadata: 'hetzner' }));
    const config = agentConfigFromUserData(hetzner);
    expect(config.metadata).toBe('hetzner');
    expect(config).not.toHaveProperty('imds');
    expect(config).not.toHaveProperty('hetznerMetadata');
    expect(config).toMatchObject({ instanceId: 'inst-0001', bootstrapToken: TOKEN, credentialFile: AGENT_PATHS.credentialFile, selfSocket: AGENT_PATHS.selfSocket });
    // Nothing else differs from EC2's.
    const ec2 = renderAgentUserData(input());
    expect(hetzner).not.toBe(ec2);
    expect(hetzner.replace('"metadata": "hetzner"', '"metadata": "ec2"')).toBe(ec2);
    expect(agentConfigFromUserData(ec2).metadata).toBe('ec2');
  });

  it('refuses more than 32 KiB of user data for Hetzner Cloud, and takes there what EC2 would refuse', () => {
    expect(USER_DATA_MAX_BYTES).toEqual({ ec2: 16_384, hetzner: 32_768 });
    expect(MAX_USER_DATA_BYTES).toBe(USER_DATA_MAX_BYTES.ec2);
    const max = USER_DATA_MAX_BYTES.hetzner;
    const base = Buffer.byteLength(renderAgentUserData(input({ metadata: 'hetzner', extraUserData: '#cloud-config\n' })));
    const room = max - base;
    const fits = `#cloud-config\n#${'x'.repeat(room - 2)}\n`;
    expect(Buffer.byteLength(renderAgentUserData(input({ metadata: 'hetzner', extraUserData: fits })))).toBe(max);
    // 32 KiB is more than EC2 takes.
    expect(() => renderAgentUserData(input({ extraUserData: fits }))).toThrow(/bytes, more than the 16384 EC2 allows; the largest part is extraUserData/);
    const tooBig = `#cloud-config\n#${'x'.repeat(room - 1)}\n`;
    expect(() => renderAgentUserData(input({ metadata: 'hetzner', extraUserData: tooBig }))).toThrow(
      new InvalidRequestError(`rendering the agent user data for instance inst-0001: ${max + 1} bytes, more than the ${max} Hetzner Cloud allows; the largest part is extraUserData (${room + 15} bytes)`),
    );
  });

  it('takes a limit of its own in maxBytes, whatever the cloud, and refuses one that is not a positive integer', () => {
    const size = Buffer.byteLength(renderAgentUserData(input({ metadata: 'hetzner' })));
    expect(Buffer.byteLength(renderAgentUserData(input({ metadata: 'hetzner', maxBytes: size })))).toBe(size);
    expect(() => renderAgentUserData(input({ metadata: 'hetzner', maxBytes: size - 1 }))).toThrow(
      new InvalidRequestError(`rendering the agent user data for instance inst-0001: ${size} bytes, more than maxBytes (${size - 1}) allows; the largest part is servers (67 bytes)`),
    );
    // A larger limit than EC2's own, for EC2's metadata, is the caller's to answer for.
    const big = `#cloud-config\n#${'x'.repeat(20_000)}\n`;
    expect(() => renderAgentUserData(input({ extraUserData: big }))).toThrow(/more than the 16384 EC2 allows/);
    expect(renderAgentUserData(input({ extraUserData: big, maxBytes: 32_768 }))).toContain(big);
    for (const maxBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => renderAgentUserData(input({ maxBytes })), String(maxBytes)).toThrow(new InvalidRequestError('rendering the agent user data for instance inst-0001: maxBytes must be a positive integer'));
    }
  });

  it('refuses what the agent would refuse, naming the field, and never echoes the token', () => {
    for (const [extra, field] of [
      [{ servers: ['not a url'] }, 'servers.0'],
      [{ agent: { command: [] } }, 'agent.command'],
      [{ agent: { healthCheckIntervalMs: -1 } }, 'agent.healthCheckIntervalMs'],
      [{ bootstrapToken: 'short' }, 'bootstrapToken'],
      [{ serverCa: 'not a pem' }, 'serverCa'],
    ] as const) {
      let error: unknown;
      try {
        renderAgentUserData(input(extra));
      } catch (err) {
        error = err;
      }
      expect(error, field).toBeInstanceOf(InvalidRequestError);
      expect((error as Error).message, field).toMatch(new RegExp(`^rendering the agent user data for instance inst-0001: .*${field.replace('.', '\\.')}: `));
      expect((error as Error).message).not.toContain(TOKEN);
    }
  });

  it('finds no config in user data it did not render, or in a config that does not validate', () => {
    expect(() => agentConfigFromUserData('#cloud-config\n{}\n')).toThrow(`reading the agent config from user data: none is embedded (between ${AGENT_CONFIG_MARKER} markers)`);
    expect(() => agentConfigFromUserData(`cat <<'${AGENT_CONFIG_MARKER}'\n{"instanceId":""}\n${AGENT_CONFIG_MARKER}\n`)).toThrow(/^reading the agent config from user data: instanceId: /);
    expect(() => agentConfigFromUserData(`cat <<'${AGENT_CONFIG_MARKER}'\nnot json\n${AGENT_CONFIG_MARKER}\n`)).toThrow('reading the agent config from user data: the embedded config is not JSON');
  });
});
