/**
 * The built CLI (`dist/cli/main.js`) as a user runs it, against a real server on 127.0.0.1.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, requireBuild } from '../e2e/process-harness.js';
import { openApiDocument } from '../../src/server/openapi.js';
import { OpenApiChecker } from '../helpers/openapi-check.js';
import { TestServer } from '../helpers/server-harness.js';
import { runCli } from './run-cli.js';

let t: TestServer | undefined;
beforeAll(() => requireBuild());
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const run = runCli;

describe('drover CLI', { timeout: 60_000 }, () => {
  it('prints help for every command and exits 0', async () => {
    for (const args of [['--help'], ['status', '--help'], ['scale', '--help'], ['drain', 'ack', '--help'], ['local', 'notice', '--help']]) {
      const res = await run(args);
      expect(res.status, args.join(' ')).toBe(0);
      expect(res.stdout).toMatch(/Usage: drover/);
    }
  });

  it("prints package.json's version with --version and -V, and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const res = await run([flag]);
      expect(res.status, flag).toBe(0);
      expect(res.stdout).toBe(`${version}\n`);
    }
  });

  it('exits 2 on a bad command line', async () => {
    const res = await run(['scale', 'not-a-group']);
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(/missing required argument 'size'/);
    const bad = await run(['scale', 'nogroup', '3', '--server', 'http://127.0.0.1:1']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/expected <tenant>\/<group>/);
  });

  it('exits 3 with a clear message when the server is unreachable', async () => {
    const port = await freePort();
    const res = await run(['status'], { DROVER_SERVER: `http://127.0.0.1:${port}` });
    expect(res.status).toBe(3);
    expect(res.stderr).toMatch(new RegExp(`cannot reach the Drover server at http://127.0.0.1:${port}: ECONNREFUSED`));
  });

  it('shows groups as a table and as JSON, using the token from the environment', async () => {
    t = await new TestServer({ token: 'tok-0123456789abcdef' }).start();
    await t.settle();
    const denied = await run(['status'], { DROVER_SERVER: t.url });
    expect(denied.status).toBe(1);
    expect(denied.stderr).toMatch(/missing or wrong bearer token \(HTTP 401\)/);
    const table = await run(['status'], { DROVER_SERVER: t.url, DROVER_TOKEN: 'tok-0123456789abcdef' });
    expect(table.status, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^GROUP\s+SIZE\s+SET-BY\s+IN-SERVICE\s+PENDING\s+DRAINING\s+UNHEALTHY\s+BLOCKED\ndefault\/web\s+2\s+config\s+0\s+2\s+0\s+0/);
    expect(table.stdout).toMatch(/\n\nsize set by:\n {2}default\/web: the configured size 2 \(in force since [^)]+\)\n$/);
    const json = await run(['status', '-o', 'json', '--token', 'tok-0123456789abcdef', '--server', t.url]);
    expect(JSON.parse(json.stdout)).toEqual([expect.objectContaining({ tenant: 'default', group: 'web', size: 2 })]);
  });

  it("prints the API's own shapes with -o json: each output matches the OpenAPI document's answer for its route", async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const checker = new OpenApiChecker(openApiDocument(t.server.routes(), { version: 'test' }));
    const env = { DROVER_SERVER: t.url };
    const cases: Array<[string[], string, string]> = [
      [['status'], 'GET', '/v1/groups'],
      [['instances', 'default/web'], 'GET', '/v1/instances'],
      [['audit'], 'GET', '/v1/audit'],
      [['plan', 'default/web'], 'GET', '/v1/groups/default/web/plan'],
      [['tenants'], 'GET', '/v1/tenants'],
      [['protect', inst!.id, '--for', '1h'], 'PUT', `/v1/instances/${inst!.id}/protection`],
      [['unprotect', inst!.id], 'DELETE', `/v1/instances/${inst!.id}/protection`],
      [['scale', 'default/web', '3'], 'PUT', '/v1/groups/default/web/size'],
      [['drain', 'start', inst!.id], 'POST', `/v1/instances/${inst!.id}/drain`],
    ];
    for (const [args, method, path] of cases) {
      const res = await run([...args, '-o', 'json'], env);
      expect(res.status, `${args.join(' ')}: ${res.stderr}`).toBe(0);
      const status = method === 'POST' ? 202 : 200;
      expect(checker.problem(method, path, status, 'application/json', JSON.parse(res.stdout)), args.join(' ')).toBeNull();
    }
    // explain prints two of them side by side.
    const explain = await run(['explain', 'default/web', '-o', 'json'], env);
    const both = JSON.parse(explain.stdout) as { group: unknown; plan: unknown };
    expect(checker.problem('GET', '/v1/groups/default/web', 200, 'application/json', both.group)).toBeNull();
    expect(checker.problem('GET', '/v1/groups/default/web/plan', 200, 'application/json', both.plan)).toBeNull();
  });

  it('reports the server’s own words when it refuses a request', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const res = await run(['drain', 'ack', inst!.id], { DROVER_SERVER: t.url });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain(`instance ${inst!.id} is not draining (status running) (HTTP 409)`);
  });

  it('scales with --wait, showing progress until the group is in service', async () => {
    t = await new TestServer().start();
    await t.settle();
    // Simulated agents: report health for every instance as it appears.
    const reporter = setInterval(() => {
      for (const i of t!.server.db.listInstances()) if (i.status === 'running') t!.server.db.recordHealth(i.id, new Date());
    }, 100);
    try {
      const res = await run(['scale', 'default/web', '4', '--wait', '--timeout', '30s'], { DROVER_SERVER: t.url });
      expect(res.status, res.stderr).toBe(0);
      expect(res.stderr).toMatch(/default\/web: 4\/4 in service, 0 pending, 0 draining/);
    } finally {
      clearInterval(reporter);
    }
  });

  it('shows an instance waiting for its launch hook, and completes the hook with hook launch', async () => {
    t = await new TestServer({ groups: { default: { web: { size: 1, template: 'web', hooks: { launch: { timeout: '10m' } } } } } }).start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const list = await run(['instances', 'default/web'], { DROVER_SERVER: t.url });
    expect(list.stdout).toMatch(new RegExp(`${inst!.id}\\s+default/web\\s+running \\(launch hook pending\\)`));
    const bad = await run(['hook', 'launch', inst!.id, '--result', 'later'], { DROVER_SERVER: t.url });
    expect(bad).toMatchObject({ status: 2, stderr: expect.stringContaining('--result must be continue or abandon') });
    const done = await run(['hook', 'launch', inst!.id, '--result', 'continue', '-o', 'json'], { DROVER_SERVER: t.url });
    expect(done.status, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toEqual({ instanceId: inst!.id, result: 'continue', launchHook: 'continued' });
    const checker = new OpenApiChecker(openApiDocument(t.server.routes(), { version: 'test' }));
    expect(checker.problem('POST', `/v1/instances/${inst!.id}/hooks/launch`, 200, 'application/json', JSON.parse(done.stdout))).toBeNull();
    const again = await run(['hook', 'launch', inst!.id], { DROVER_SERVER: t.url });
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`instance ${inst!.id} has no launch hook pending: it was continued already (HTTP 409)`);
  });

  it('lists instances, plans and the audit trail', async () => {
    t = await new TestServer().start();
    await t.settle();
    const list = await run(['instances', 'default/web', '-o', 'wide'], { DROVER_SERVER: t.url });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout.split('\n').filter((l) => l.startsWith('i-'))).toHaveLength(2);
    const plan = await run(['plan', 'default/web'], { DROVER_SERVER: t.url });
    expect(plan.stdout).toMatch(/default\/web: size 2/);
    const audit = await run(['audit', '--group', 'default/web', '-o', 'json'], { DROVER_SERVER: t.url });
    expect((JSON.parse(audit.stdout) as Array<{ action: string }>).map((a) => a.action)).toEqual(['create', 'create', 'created', 'created']);
  });
});
