/**
 * The route declaration layer (src/server/route-spec.ts): one declaration gives the handler its
 * parsed, typed inputs and refuses input that does not parse with a 400 naming the field; the
 * handler's answer is type-checked against the declared response schemas (the `@ts-expect-error`
 * lines below fail `tsc` when that check goes away).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DroverError, HTTP_STATUS } from '../../src/errors/index.js';
import { defineRoute } from '../../src/server/route-spec.js';

function app(): FastifyInstance {
  const server = Fastify();
  // The API's error mapping (http.ts), as far as this test needs it.
  server.setErrorHandler((err: Error, _req, reply) => {
    void reply.code(err instanceof DroverError ? HTTP_STATUS[err.code] : 500).send({ error: err.message });
  });
  return server;
}

describe('defineRoute', () => {
  it('hands the handler its parsed inputs and refuses input that does not parse with a 400 naming the field', async () => {
    const server = app();
    const seen: unknown[] = [];
    defineRoute(
      server,
      {
        method: 'POST',
        url: '/things/:id',
        access: 'operator',
        tag: 'test',
        summary: 'test',
        params: z.object({ id: z.string().regex(/^\d+$/, { error: 'id must be digits' }).transform(Number) }),
        query: z.object({ dry: z.enum(['true', 'false']).optional() }),
        body: z.strictObject({ count: z.number().int({ error: 'count must be a whole number' }) }),
        responses: { 202: { description: 'ok', schema: z.object({ id: z.number(), count: z.number() }) } },
      },
      async ({ reply, params, query, body }) => {
        seen.push({ params, query, body });
        void reply.code(202);
        return { id: params.id, count: body.count };
      },
    );
    const ok = await server.inject({ method: 'POST', url: '/things/7?dry=true', payload: { count: 3 } });
    expect(ok.statusCode).toBe(202);
    expect(ok.json()).toEqual({ id: 7, count: 3 });
    expect(seen).toEqual([{ params: { id: 7 }, query: { dry: 'true' }, body: { count: 3 } }]);

    const badPath = await server.inject({ method: 'POST', url: '/things/x', payload: { count: 3 } });
    expect([badPath.statusCode, badPath.json()]).toEqual([400, { error: 'invalid path: id: id must be digits' }]);
    const badQuery = await server.inject({ method: 'POST', url: '/things/7?dry=maybe', payload: { count: 3 } });
    expect(badQuery.statusCode).toBe(400);
    expect(badQuery.json<{ error: string }>().error).toMatch(/^invalid query: dry: /);
    const badBody = await server.inject({ method: 'POST', url: '/things/7', payload: { count: 1.5 } });
    expect([badBody.statusCode, badBody.json()]).toEqual([400, { error: 'invalid body: count: count must be a whole number' }]);
    expect(seen).toHaveLength(1);
    await server.close();
  });

  it('keeps the declaration on the route, and lets a route word its own 400', async () => {
    const server = app();
    const configs: unknown[] = [];
    server.addHook('onRoute', (route: { config?: unknown }) => void configs.push(route.config));
    defineRoute(
      server,
      {
        method: 'PUT',
        url: '/size',
        access: 'admin',
        tag: 'test',
        summary: 'set the size',
        body: z.strictObject({ size: z.number() }),
        invalid: (part, issues) => `setting the size: invalid ${part}: ${issues} (expected {"size": n})`,
        responses: { 200: { description: 'ok', schema: z.object({ size: z.number() }) } },
      },
      async ({ body }) => ({ size: body.size }),
    );
    expect(configs).toEqual([expect.objectContaining({ access: 'admin', spec: expect.objectContaining({ method: 'PUT', url: '/size', summary: 'set the size' }) })]);
    const res = await server.inject({ method: 'PUT', url: '/size', payload: { size: 'big' } });
    expect(res.json<{ error: string }>().error).toMatch(/^setting the size: invalid body: size: .* \(expected \{"size": n\}\)$/);
    await server.close();
  });

  it('type-checks what a handler answers against the declared responses', () => {
    const server = app();
    const spec = { method: 'GET', url: '/typed', access: 'viewer', tag: 'test', summary: 'typed', responses: { 200: { description: 'ok', schema: z.object({ n: z.number() }) } } } as const;
    defineRoute(server, spec, async () => ({ n: 1 }));
    // @ts-expect-error -- a field of the wrong type is not a declared answer
    defineRoute(server, { ...spec, url: '/typed2' }, async () => ({ n: 'one' }));
    // @ts-expect-error -- nor is a missing field
    defineRoute(server, { ...spec, url: '/typed3' }, async () => ({}));
    expect(server.hasRoute({ method: 'GET', url: '/typed' })).toBe(true);
  });
});
