/**
 * The sites that used to throw a bare Error now throw their catalogue class, with the message
 * still in the "doing X: cause" form.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/agent/config.js';
import { AgentCredentials } from '../../src/agent/credentials.js';
import { CliError, EXIT } from '../../src/cli/client.js';
import { parseOutput } from '../../src/cli/format.js';
import { ManualClock } from '../../src/clock/index.js';
import { ConfigError, HTTP_STATUS, InternalError, SettingError, type DroverError } from '../../src/errors/index.js';
import { EtcdElector, connectEtcd } from '../../src/leader/etcd-elector.js';
import { parseCertificates, readSettingFile } from '../../src/util/pem.js';

const dir = mkdtempSync(join(tmpdir(), 'drover-error-sites-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('catalogue classes at the former bare-Error sites', () => {
  it('a file a setting names that cannot be read or holds no certificate is a SettingError naming both', () => {
    const missing = join(dir, 'missing.pem');
    const err = caught(() => readSettingFile('server.tls.cert', missing));
    expect(err).toBeInstanceOf(SettingError);
    expect((err as SettingError).code).toBe('config');
    expect((err as SettingError).retryable).toBe(false);
    expect((err as Error).message).toMatch(new RegExp(`^reading server.tls.cert ${missing}: ENOENT`));
    expect((err as Error).cause).toBeInstanceOf(Error);
    expect(() => parseCertificates('server.tls.ca', '/x.pem', 'not pem')).toThrow(SettingError);
  });

  it("the agent's config: unreadable or invalid is a ConfigError listing the problems", () => {
    const bad = join(dir, 'agent.json');
    writeFileSync(bad, JSON.stringify({ instanceId: 'i-1', servers: [] }));
    const err = caught(() => readAgentConfig(bad));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(new RegExp(`^invalid agent config ${bad}: servers: `));
    expect((err as ConfigError).issues.map((i) => i.path)).toEqual(expect.arrayContaining(['servers', 'credential']));
    writeFileSync(bad, '{ not json');
    expect(() => readAgentConfig(bad)).toThrow(ConfigError);
    expect(() => readAgentConfig(join(dir, 'none.json'))).toThrow(new RegExp(`^invalid agent config .*: reading .*none.json: ENOENT`));
  });

  it('a short agent secret and etcd settings that cannot work are SettingErrors', () => {
    expect(() => new AgentCredentials('short')).toThrow(SettingError);
    expect(() => connectEtcd([' '])).toThrow(new SettingError('connecting to etcd: leader.endpoints lists no endpoint'));
    expect(() => connectEtcd(['https://a:2379'], { tls: { ca: join(dir, 'none.pem'), cert: 'c.pem' } })).toThrow(SettingError);
  });

  it('an elector given a TTL out of its contract is an InternalError, answered 500 without its message', () => {
    const err = caught(() => new EtcdElector({ client: {} as Etcd3, shardId: 's', ttlMs: 0, address: () => null, clock: new ManualClock() }));
    expect(err).toBeInstanceOf(InternalError);
    expect((err as DroverError).message).toBe('creating the etcd elector: ttlMs must be > 0 (got 0)');
    expect(HTTP_STATUS[(err as DroverError).code]).toBe(500);
  });

  it('an unknown -o format is a usage error of the CLI', () => {
    const err = caught(() => parseOutput('yaml'));
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.usage);
  });
});
