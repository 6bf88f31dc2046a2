/**
 * deploy/systemd: the server's and the agent's units pass `systemd-analyze verify`, carry the
 * hardening they promise, run the real CLI commands, and the agent's is the very text the cloud
 * bootstrap writes.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentUnit } from '../../src/providers/cloud-init/agent-unit.js';
import { AGENT_PATHS, renderAgentUserData } from '../../src/providers/cloud-init/user-data.js';
import { describeWithTool, findTool, SYSTEMD_ANALYZE_TOOL } from '../helpers/tools.js';

const DIR = join(import.meta.dirname, '../../deploy/systemd');
const SERVER = join(DIR, 'drover-server.service');
const AGENT = join(DIR, 'drover-agent.service');
const ROOT = join(import.meta.dirname, '../..');

/** The [Service] section's directives: each key with its values, in order (comments left out). */
function service(path: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    if (section !== 'Service') continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}
const one = (unit: Map<string, string[]>, key: string): string | undefined => unit.get(key)?.at(-1);

describeWithTool(SYSTEMD_ANALYZE_TOOL, 'the systemd units in deploy/systemd', () => {
  for (const file of [SERVER, AGENT]) {
    it(`${file.split('/').pop()} passes systemd-analyze verify without a warning`, () => {
      const res = spawnSync(findTool(SYSTEMD_ANALYZE_TOOL)!, ['verify', file], { encoding: 'utf8' });
      expect(res.stdout + res.stderr).toBe('');
      expect(res.status).toBe(0);
    });
  }
});

describe('the server unit deploy/systemd/drover-server.service', () => {
  const unit = service(SERVER);

  it('runs drover server with a config file as its own unprivileged user, restarting on failure', () => {
    expect(one(unit, 'ExecStart')).toMatch(/^\/usr\/bin\/env drover server --config \/\S+$/);
    expect(one(unit, 'User')).toBeTruthy();
    expect(one(unit, 'User')).not.toBe('root');
    expect(one(unit, 'Restart')).toBe('on-failure');
  });

  it('keeps its state in the drover state directory and may write nowhere else', () => {
    expect(one(unit, 'StateDirectory')).toBe('drover');
    expect(one(unit, 'ProtectSystem')).toBe('strict');
    expect(one(unit, 'ProtectHome')).toBe('yes');
    expect(one(unit, 'PrivateTmp')).toBe('yes');
    expect(unit.has('ReadWritePaths')).toBe(false);
  });

  it('holds no privilege, speaks only IP and Unix sockets and makes only system-service calls', () => {
    expect(one(unit, 'NoNewPrivileges')).toBe('yes');
    expect(one(unit, 'CapabilityBoundingSet')).toBe('');
    expect(one(unit, 'RestrictAddressFamilies')!.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    expect(one(unit, 'SystemCallFilter')).toBe('@system-service');
  });

  it('allows the open files of many agent connections', () => {
    expect(Number(one(unit, 'LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
  });

  it('has an ExecReload only if the server handles a reload signal', () => {
    const handlesHup = readFileSync(join(ROOT, 'src/cli/commands/server.ts'), 'utf8').includes('SIGHUP');
    expect(unit.has('ExecReload')).toBe(handlesHup);
  });
});

describe('the agent unit deploy/systemd/drover-agent.service', () => {
  it('is the unit the cloud bootstrap writes, byte for byte', () => {
    expect(readFileSync(AGENT, 'utf8')).toBe(agentUnit(AGENT_PATHS.config));
    const script = renderAgentUserData({ instanceId: 'inst-0001', servers: ['https://drover-1.internal:7400'], bootstrapToken: 'tok_0123456789abcdefghijklmnopqrstuvwxyzABCD', metadata: 'ec2', agent: {} });
    expect(script).toContain(`cat > ${AGENT_PATHS.unit} <<'DROVER_AGENT_UNIT'\n${readFileSync(AGENT, 'utf8')}DROVER_AGENT_UNIT\n`);
  });

  it('runs drover agent with the config file the bootstrap writes, as an unprivileged user', () => {
    const unit = service(AGENT);
    expect(one(unit, 'ExecStart')).toBe(`/usr/bin/env drover agent --config ${AGENT_PATHS.config}`);
    expect(one(unit, 'User')).not.toBe('root');
    expect(one(unit, 'NoNewPrivileges')).toBe('yes');
    expect(one(unit, 'CapabilityBoundingSet')).toBe('');
  });

  it('leaves the workload its system calls and address families (no filter that would break it)', () => {
    const unit = service(AGENT);
    expect(unit.has('SystemCallFilter')).toBe(false);
    expect(unit.has('RestrictAddressFamilies')).toBe(false);
    expect(unit.has('MemoryDenyWriteExecute')).toBe(false);
  });
});
