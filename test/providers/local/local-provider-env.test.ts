/**
 * What a local instance gets from the server: an allow-listed environment (plus what its template
 * passes or sets), a folder and files only its Unix user can read, and none of the server's open
 * files. Real detached processes (the fake agent and its child), read through /proc.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { InvalidRequestError, PermanentError } from '../../../src/errors/index.js';
import { localInstancePaths, writeNotice } from '../../../src/providers/local/index.js';
import type { ProviderCreateRequest } from '../../../src/providers/index.js';
import { useLocalProviderFixture } from './fake-agent.js';

const fx = useLocalProviderFixture('drover-local-env-');
let seq = 0;

function request(template: Record<string, unknown> = {}): ProviderCreateRequest {
  const id = `i-env${process.pid}-${++seq}`;
  fx.track(id);
  return {
    idempotencyKey: id,
    tags: { 'drover:instance-id': id },
    template,
    userData: { DROVER_SERVER: 'http://127.0.0.1:7001', DROVER_AGENT_CREDENTIAL: 'instance-credential' },
  };
}

async function ready(id: string): Promise<void> {
  const dir = localInstancePaths(fx.stateDir, id).dir;
  await vi.waitFor(() => expect(existsSync(join(dir, 'ready'))).toBe(true), { timeout: 10_000, interval: 10 });
}

/** The environment a process was started with. */
function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** The agent's pid and its child's (the workload stand-in). */
function pidsOf(id: string): [number, number] {
  const paths = localInstancePaths(fx.stateDir, id);
  return [Number(readFileSync(paths.pidFile, 'utf8')), Number(readFileSync(join(paths.dir, 'child.pid'), 'utf8'))];
}

const mode = (path: string): number => statSync(path).mode & 0o777;

/** Runs `fn` with `vars` set in this process's environment (the server's), restoring it after. */
async function withServerEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('LocalProvider: what an instance gets from the server', () => {
  it('gives an instance only the allow-listed part of the server’s environment, plus what its template passes and sets', async () => {
    const p = fx.provider();
    const req = request({ passEnv: ['PASSED_ONE', 'PASSED_GROUP_*'], env: { GIVEN: 'from the template', PORT: 8080, DEBUG: false, TZ: 'Europe/Paris' } });
    await withServerEnv(
      {
        DROVER_AGENT_SECRET: 'server-secret',
        DROVER_TOKEN: 'admin-token',
        AWS_SECRET_ACCESS_KEY: 'cloud-key',
        NODE_OPTIONS: '--max-old-space-size=200',
        LANG: 'C.UTF-8',
        LC_TIME: 'C',
        TZ: 'UTC',
        PASSED_ONE: 'one',
        PASSED_GROUP_A: 'a',
        PASSED_GROUP_B: 'b',
        PASSED_ONE_NOT: 'not an exact match',
      },
      () => p.create(req),
    );
    const id = req.idempotencyKey;
    await ready(id);

    // Computed here independently of the provider: the allow-list as the README states it.
    const allowList = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'TZ', 'TMPDIR', 'TERM', 'SHELL', 'NODE_EXTRA_CA_CERTS', 'DROVER_LOG_LEVEL']);
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k, v]) => v !== undefined && (allowList.has(k) || k.startsWith('LC_'))));
    const expected = {
      ...inherited,
      LANG: 'C.UTF-8',
      LC_TIME: 'C',
      PASSED_ONE: 'one',
      PASSED_GROUP_A: 'a',
      PASSED_GROUP_B: 'b',
      GIVEN: 'from the template',
      PORT: '8080',
      DEBUG: 'false',
      TZ: 'Europe/Paris', // the template's value wins over the server's
      DROVER_INSTANCE_ID: id,
    };
    const [agent, workload] = pidsOf(id);
    for (const pid of [agent, workload]) {
      const env = environOf(pid);
      expect(env).toEqual(expected);
      for (const secret of ['DROVER_AGENT_SECRET', 'DROVER_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'NODE_OPTIONS', 'PASSED_ONE_NOT']) expect(env).not.toHaveProperty(secret);
    }
    // The credential reaches the agent in its own config file, which holds nothing of another instance.
    const config = JSON.parse(readFileSync(localInstancePaths(fx.stateDir, id).agentConfig, 'utf8')) as Record<string, unknown>;
    expect(config.credential).toBe('instance-credential');
    expect(JSON.stringify(config)).not.toMatch(/server-secret|admin-token/);
  });

  it('refuses bad template env and passEnv fields at create time with a PermanentError naming the field, creating nothing', async () => {
    const p = fx.provider();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ env: ['A=b'] }, 'template field env: must be a mapping of variable names to values'],
      [{ env: { 'BAD-NAME': 'x' } }, 'template field env.BAD-NAME: not a variable name'],
      [{ env: { FOO: { nested: 1 } } }, 'template field env.FOO: must be a string, number or boolean, got object'],
      [{ env: { FOO: null } }, 'template field env.FOO: must be a string, number or boolean, got null'],
      [{ env: { FOO: 'a\0b' } }, 'template field env.FOO: must not contain a NUL character'],
      [{ env: { DROVER_INSTANCE_ID: 'i-other' } }, 'template field env.DROVER_INSTANCE_ID: DROVER_INSTANCE_ID is set by Drover for every instance'],
      [{ passEnv: 'PATH' }, 'template field passEnv: must be a list of variable names'],
      [{ passEnv: ['PATH', '*'] }, 'template field passEnv[1]: "*" is not a variable name'],
      [{ passEnv: ['DROVER_AGENT_SECRET'] }, 'template field passEnv[0]: DROVER_AGENT_SECRET is a secret of the server and is never passed to an instance'],
      [{ passEnv: ['DROVER_TOKEN'] }, 'template field passEnv[0]: DROVER_TOKEN is a secret of the server'],
    ];
    for (const [template, message] of cases) {
      const req = request(template);
      const err: unknown = await p.create(req).catch((e: unknown) => e);
      expect(err, JSON.stringify(template)).toBeInstanceOf(PermanentError);
      expect((err as PermanentError).unwrap()).toBeInstanceOf(InvalidRequestError);
      expect((err as Error).message).toContain(`creating instance ${req.idempotencyKey}: ${message}`);
      expect(existsSync(localInstancePaths(fx.stateDir, req.idempotencyKey).dir)).toBe(false);
    }
    expect(await p.list({})).toEqual([]);
  });

  it('keeps an instance’s folder at mode 0700 and the files it writes there at 0600, tightening a folder left more open', async () => {
    const p = fx.provider();
    const req = request();
    const paths = localInstancePaths(fx.stateDir, req.idempotencyKey);
    // A folder from before (created, never started) with the usual 0755.
    mkdirSync(paths.dir, { recursive: true, mode: 0o755 });
    expect(mode(paths.dir)).toBe(0o755);
    await p.create(req);
    await ready(req.idempotencyKey);
    writeNotice(fx.stateDir, req.idempotencyKey, new Date(Date.now() + 3_600_000));
    expect(mode(fx.stateDir)).toBe(0o700);
    expect(mode(paths.dir)).toBe(0o700);
    for (const file of [paths.agentConfig, paths.meta, paths.log, paths.notice]) expect(mode(file), file).toBe(0o600);
  });

  it('does not hand an instance any file the server has open', async () => {
    const p = fx.provider();
    const secretFile = join(fx.root, 'server-agent-secret');
    writeFileSync(secretFile, 'server-secret', { mode: 0o600 });
    const fd = openSync(secretFile, 'r');
    const req = request();
    try {
      await p.create(req);
      await ready(req.idempotencyKey);
    } finally {
      closeSync(fd);
    }
    const [agent, workload] = pidsOf(req.idempotencyKey);
    for (const pid of [agent, workload]) {
      const targets = readdirSync(`/proc/${pid}/fd`).flatMap((n) => {
        try {
          return [readlinkSync(`/proc/${pid}/fd/${n}`)];
        } catch {
          return [];
        }
      });
      // The agent was given its log as stdout and stderr: the listing does show what an instance holds.
      if (pid === agent) expect(targets).toContain(localInstancePaths(fx.stateDir, req.idempotencyKey).log);
      expect(targets).not.toContain(secretFile);
    }
  });
});
