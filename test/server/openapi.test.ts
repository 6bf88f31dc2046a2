/**
 * `GET /v1/openapi.json`: the OpenAPI 3.1 document written from the routes' declarations
 * (src/server/route-spec.ts, openapi.ts). It passes a real OpenAPI linter (Redocly's recommended
 * rules), lists exactly the routes fastify registered, needs the viewer role, and is what the test
 * harnesses check every answer against (test/helpers/openapi-check.ts) — which catches an answer
 * the document does not describe.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument, type OpenApiDocument } from '../../src/server/openapi.js';
import { OpenApiChecker } from '../helpers/openapi-check.js';
import { TestServer } from '../helpers/server-harness.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const ADMIN = 'openapi-admin-token-0123';
const VIEWER = 'openapi-viewer-token-0123';
let t: TestServer;
let receiver: WebhookReceiver;
let document: OpenApiDocument;

beforeAll(async () => {
  receiver = await WebhookReceiver.start();
  process.env.DROVER_TEST_OPENAPI_VIEWER = VIEWER;
  t = new TestServer({ token: ADMIN, shard: { healthCheckInterval: '1h', startupTimeout: '2h' } });
  const secret = join(mkdtempSync(join(t.dir, 'secret-')), 'hook.secret');
  writeFileSync(secret, 'openapi-webhook-secret-0123456789\n', { mode: 0o600 });
  t.writeConfig({
    notifications: [{ name: 'ops', url: receiver.url, secretFile: secret, events: ['instanceCreated'] }],
    server: { tokens: [{ name: 'grafana', env: 'DROVER_TEST_OPENAPI_VIEWER', role: 'viewer' }] },
  });
  await t.start();
  await t.settle();
  const res = await t.api<OpenApiDocument>('GET', '/v1/openapi.json');
  expect(res.status).toBe(200);
  document = res.body;
});

afterAll(async () => {
  await t.close();
  await receiver.close();
  delete process.env.DROVER_TEST_OPENAPI_VIEWER;
});

const operationsOf = (doc: OpenApiDocument): string[] =>
  Object.entries(doc.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();

describe('GET /v1/openapi.json', () => {
  it('serves an OpenAPI 3.1 document in which the Redocly linter (recommended rules) finds no error and no warning', async () => {
    expect(document.openapi).toBe('3.1.0');
    const config = await createConfig({ extends: ['recommended'] });
    const problems = await lintFromString({ source: JSON.stringify(document), absoluteRef: 'openapi.json', config });
    const errors = problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`);
    expect(errors).toEqual([]);
    const warnings = problems.filter((p) => p.severity === 'warn').map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`);
    expect(warnings).toEqual([]);
  });

  it('describes every route fastify registered, with its access, and no route it did not', () => {
    const routes = t.server.routes();
    expect(routes.length).toBeGreaterThan(30);
    const registered = routes.map((r) => `${r.method} ${r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`).sort();
    expect(operationsOf(document)).toEqual(registered);
    for (const r of routes) {
      const op = document.paths[r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op?.['x-drover-access'], `${r.method} ${r.url}`).toBe(r.access);
      expect(op?.security, `${r.method} ${r.url}`).toEqual(r.access === 'public' ? [] : [{ bearerToken: [] }]);
    }
    // The optional parts are in: webhooks (configured here) and the agents' bootstrap exchange.
    expect(document.paths['/v1/notifications/deliveries']?.get).toBeDefined();
    expect(document.paths['/v1/agent/bootstrap']?.post).toBeDefined();
    // The WebSocket is no fastify route: named in the description, not listed as a path.
    expect(document.paths['/v1/agent']).toBeUndefined();
    expect(document.info.description).toMatch(/\/v1\/agent.*WebSocket/);
  });

  it('is the document the harness checks answers against (written from the same declarations)', () => {
    expect(openApiDocument(t.server.routes(), { version: document.info.version })).toEqual(document);
  });

  it('describes errors with the error body, the event stream as text/event-stream, and the bearer token scheme', () => {
    expect(document.components.securitySchemes.bearerToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(document.components.schemas.ErrorBody).toMatchObject({ type: 'object', required: ['error'] });
    const size = document.paths['/v1/groups/{tenant}/{group}/size']!.put!;
    const responses = size.responses as Record<string, { content?: Record<string, { schema: unknown }> }>;
    for (const status of ['400', '401', '403', '404', '307', '503', 'default']) {
      expect(responses[status]?.content?.['application/json']?.schema, status).toEqual({ $ref: '#/components/schemas/ErrorBody' });
    }
    expect(size.requestBody).toMatchObject({ required: true, content: { 'application/json': { schema: { type: 'object', required: ['size'] } } } });
    const events = document.paths['/v1/events']!.get!.responses as Record<string, { content?: Record<string, unknown> }>;
    expect(Object.keys(events['200']!.content!)).toEqual(['text/event-stream']);
    expect((document.paths['/v1/groups']!.get!.responses as Record<string, { content: Record<string, { schema: unknown }> }>)['200']!.content['application/json']!.schema).toEqual({
      type: 'array',
      items: { $ref: '#/components/schemas/GroupView' },
    });
  });

  it('needs a token with the viewer role: 401 without one', async () => {
    const none = await fetch(`${t.url}/v1/openapi.json`);
    expect(none.status).toBe(401);
    const viewer = await fetch(`${t.url}/v1/openapi.json`, { headers: { Authorization: `Bearer ${VIEWER}` } });
    expect(viewer.status).toBe(200);
    expect(await viewer.json()).toEqual(document);
  });
});

describe('the harness checks every answer against the document', () => {
  it('fails a call whose answer the document does not describe (a planted audit action outside the enum)', async () => {
    // Planted straight into the store: an audit entry with an action the API does not declare.
    t.server.db.appendAudit({ at: new Date(), tenant: 'default', group: 'web', instanceId: null, action: 'planted' as never, reason: 'test', actor: 'test' });
    await expect(t.api('GET', '/v1/audit')).rejects.toThrow(/GET \/v1\/audit 200: the answer does not match the OpenAPI description: \/\d+\/action must be equal to one of the allowed values/);
  });

  it('fails an answer with a field the document does not declare, or a status it does not list', () => {
    const checker = new OpenApiChecker(document);
    const view = { tenant: 'a', groups: ['web'], asleep: false, sleep: null };
    expect(checker.problem('GET', '/v1/tenants', 200, 'application/json', [view])).toBeNull();
    expect(checker.problem('GET', '/v1/tenants', 200, 'application/json', [{ ...view, extra: 1 }])).toMatch(/must NOT have additional properties \(extra\)/);
    expect(checker.problem('GET', '/v1/tenants', 200, 'application/json', [{ ...view, asleep: 'no' }])).toMatch(/\/0\/asleep must be boolean/);
    expect(checker.problem('GET', '/v1/tenants', 418, 'application/json', { error: 'teapot' })).toBeNull(); // `default`: an error body
    expect(checker.problem('GET', '/v1/tenants', 418, 'application/json', { message: 'teapot' })).toMatch(/must have required property 'error'/);
    expect(checker.problem('GET', '/v1/nothing/here', 200, 'application/json', {})).toMatch(/no route of the document matches/);
    // A static segment beats a parameter, as in fastify's router.
    expect(checker.match('/v1/notifications/deliveries')).toBe('/v1/notifications/deliveries');
    expect(checker.match('/healthz')).toBe('/healthz');
    expect(checker.match('/favicon.svg')).toBe('/{file}');
  });
});
