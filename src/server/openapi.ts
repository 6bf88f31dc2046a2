/**
 * The OpenAPI 3.1 document of a server, written from its routes' declarations (route-spec.ts):
 * every route fastify registered, with its access, inputs and answers; nothing is written by hand
 * beside the routes. Served at `GET /v1/openapi.json` (http.ts).
 *
 * Contracts:
 * - Paths are fastify's with `:name` written `{name}`. A GET's automatic HEAD twin is listed as
 *   a `head` operation with the same statuses and no bodies.
 * - Schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect) from `z.toJSONSchema`: requests as
 *   they are sent (`io: 'input'`), answers as they are written (`io: 'output'`, so an object
 *   allows no field it does not declare). A schema with an `id` in its zod metadata (the views,
 *   the error body) becomes `#/components/schemas/<id>`.
 * - Every error status is answered with `ErrorBody`; `default` covers the refusals any route
 *   can give (421, 403 for another origin, 413, 415, 500).
 * - The WebSocket endpoint (`/v1/agent`) is not a fastify route and OpenAPI cannot describe a
 *   WebSocket: it is named in `info.description` and in the tag `agents`, not as a path.
 */
import { z } from 'zod';
import { errorBodySchema, isJsonResponse, type AnyRouteSpec, type HttpMethod } from './route-spec.js';

/** A route as registered (http.ts `routesOf`), with its declaration. */
export interface DeclaredRoute {
  method: string;
  url: string;
  spec: AnyRouteSpec;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

// A type (not an interface) so that it is assignable to the loose object the route declares.
export type OpenApiDocument = {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } };
  servers: Array<{ url: string; description: string }>;
  security: Array<Record<string, string[]>>;
  tags: Array<{ name: string; description: string }>;
  paths: Record<string, Record<string, JsonObject>>;
  components: { schemas: Record<string, JsonObject>; securitySchemes: Record<string, JsonObject> };
};

/** The tags in the order the document lists them, each described. */
export const TAGS: ReadonlyArray<{ name: string; description: string }> = [
  { name: 'server', description: 'Health, metrics, who the caller is, and this document.' },
  { name: 'groups', description: 'Groups, their dry-run plans and their size.' },
  { name: 'tenants', description: 'Tenants: their groups, sleep and wake.' },
  { name: 'instances', description: 'Instances, drains and protection.' },
  { name: 'audit', description: 'The audit trail: every action and who asked.' },
  { name: 'events', description: 'The live event stream (server-sent events).' },
  { name: 'notifications', description: 'Webhook endpoints, their delivery log and dead letters.' },
  { name: 'agents', description: 'What agents call. The agent connection itself, `GET /v1/agent` upgraded to a WebSocket (instance id header and credential), is not described here: OpenAPI has no WebSocket operation.' },
  { name: 'dashboard', description: "The web dashboard's files (no data; public)." },
];

const MUTATING: ReadonlySet<string> = new Set(['PUT', 'POST', 'PATCH', 'DELETE']);

const openApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** `GET /v1/groups/:tenant/:group` → `getV1GroupsTenantGroup` (`/` → `getRoot`). */
export function operationId(method: string, url: string): string {
  const words = url
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w !== '')
    .map((w) => w[0]!.toUpperCase() + w.slice(1));
  return `${method.toLowerCase()}${words.length ? words.join('') : 'Root'}`;
}

/** Collects the `$defs` of every converted schema as components, and points refs at them. */
class SchemaWriter {
  readonly components: Record<string, JsonObject> = {};
  private readonly texts = new Map<string, string>();

  write(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonObject;
    delete json.$schema;
    const defs = (json.$defs ?? {}) as Record<string, JsonObject>;
    delete json.$defs;
    for (const [id, def] of Object.entries(defs)) {
      const rewritten = this.refs(def) as JsonObject;
      const text = JSON.stringify(rewritten);
      const known = this.texts.get(id);
      // One id, one shape: a schema used with two meanings would make the document lie.
      if (known !== undefined && known !== text) throw new Error(`writing the OpenAPI document: schema id ${id} has two shapes (one used as ${io})`);
      this.texts.set(id, text);
      this.components[id] = rewritten;
    }
    return this.refs(json) as JsonObject;
  }

  private refs(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.refs(v));
    if (value === null || typeof value !== 'object') return value;
    const out: JsonObject = {};
    for (const [key, v] of Object.entries(value)) {
      out[key] = key === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/') ? `#/components/schemas/${v.slice('#/$defs/'.length)}` : this.refs(v);
    }
    return out;
  }
}

function parameters(writer: SchemaWriter, schema: z.ZodType | undefined, where: 'path' | 'query'): JsonObject[] {
  if (!schema) return [];
  if (!(schema instanceof z.ZodObject)) throw new Error(`writing the OpenAPI document: ${where} parameters must be declared as one object schema`);
  return Object.entries(schema.shape as Record<string, z.ZodType>).map(([name, field]) => {
    const json = writer.write(field, 'input');
    const description = typeof json.description === 'string' ? json.description : undefined;
    delete json.description;
    const required = where === 'path' || !field.safeParse(undefined).success;
    return { name, in: where, required, ...(description ? { description } : {}), schema: json };
  });
}

function headers(names: Record<string, string> | undefined): JsonObject | undefined {
  if (!names) return undefined;
  const out: JsonObject = {};
  for (const [name, description] of Object.entries(names)) out[name] = { description, schema: { type: 'string' } };
  return out;
}

const ACCESS_WORDS: Record<string, string> = {
  public: 'Public: no token needed.',
  viewer: 'Needs a token with the viewer role (or operator, admin).',
  operator: 'Needs a token with the operator role (or admin).',
  admin: 'Needs a token with the admin role.',
};

function operation(writer: SchemaWriter, method: string, route: DeclaredRoute, errorRef: JsonObject): JsonObject {
  const { spec } = route;
  const head = method === 'HEAD';
  const responses: JsonObject = {};
  for (const [status, answer] of Object.entries(spec.responses)) {
    const hdrs = headers(answer.headers);
    const content: JsonObject | undefined = head
      ? undefined
      : isJsonResponse(answer)
        ? { 'application/json': { schema: writer.write(answer.schema, 'output') } }
        : { [answer.contentType]: { schema: answer.contentType.startsWith('text/') ? { type: 'string' } : { type: 'string', format: 'binary' } } };
    responses[status] = { description: answer.description, ...(hdrs ? { headers: hdrs } : {}), ...(content ? { content } : {}) };
  }
  const errors: Record<string, string> = {};
  if (spec.params || spec.query || spec.body) errors['400'] = 'A path part, query parameter or the body does not parse; the message names the field.';
  if (spec.access !== 'public') errors['401'] = 'No token, or one the server does not know.';
  // Every route: the origin check and the Host allow-list run before anything else (http.ts).
  errors['403'] = spec.access === 'public' ? 'The request comes from another origin (a browser page elsewhere).' : `The token's role is not enough (${spec.access} needed), or the request comes from another origin.`;
  errors['421'] = 'The Host header names no name this server answers to (server.allowedHosts).';
  if (MUTATING.has(method) && route.url.startsWith('/v1/')) {
    errors['307'] = 'This replica does not lead its shard: the same request to the leader (`Location`, `X-Drover-Leader`).';
    errors['503'] = 'No leader is known right now (an election), or the server is not ready: retry (`Retry-After`).';
  }
  for (const [status, why] of Object.entries(spec.errors ?? {})) errors[status] = errors[status] && errors[status] !== why ? `${why} Also: ${errors[status]}` : why;
  for (const [status, why] of Object.entries(errors)) {
    const extra = status === '307' ? { headers: headers({ Location: 'The same request on the leader.', 'X-Drover-Leader': "The leader's address." }) } : status === '503' ? { headers: headers({ 'Retry-After': 'Seconds to wait.' }) } : {};
    responses[status] = { description: why, ...(extra as JsonObject), ...(head ? {} : { content: { 'application/json': { schema: errorRef } } }) };
  }
  responses.default = {
    description: 'Any other refusal or failure: 404 (a path part too long), 413 (a body too large), 415 (a body that is not JSON), 431 (headers too long), 500 (the log has the detail).',
    ...(head ? {} : { content: { 'application/json': { schema: errorRef } } }),
  };
  const body = spec.body;
  return {
    operationId: operationId(method, route.url),
    tags: [spec.tag],
    summary: head ? `${spec.summary} (headers only)` : spec.summary,
    description: `${spec.description ? `${spec.description}\n\n` : ''}${ACCESS_WORDS[spec.access] ?? ''}`,
    security: spec.access === 'public' ? [] : [{ bearerToken: [] }],
    'x-drover-access': spec.access,
    ...(spec.params || spec.query ? { parameters: [...parameters(writer, spec.params, 'path'), ...parameters(writer, spec.query, 'query')] } : {}),
    ...(body && !head
      ? { requestBody: { required: !body.safeParse(undefined).success, content: { 'application/json': { schema: writer.write(body, 'input') } } } }
      : {}),
    responses,
  };
}

export interface OpenApiOptions {
  version: string;
  /** The server's own address, when known (the document's `servers`). */
  serverUrl?: string;
}

/** The document for `routes` (all of them: http.ts `routesOf`). */
export function openApiDocument(routes: readonly DeclaredRoute[], options: OpenApiOptions): OpenApiDocument {
  const writer = new SchemaWriter();
  const errorRef = writer.write(errorBodySchema, 'output');
  const paths: Record<string, Record<string, JsonObject>> = {};
  const sorted = [...routes].sort((a, b) => a.url.localeCompare(b.url) || a.method.localeCompare(b.method));
  for (const route of sorted) {
    const method = route.method.toUpperCase() as HttpMethod | 'HEAD';
    const path = openApiPath(route.url);
    paths[path] ??= {};
    paths[path][method.toLowerCase()] = operation(writer, method, route, errorRef);
  }
  const used = new Set(sorted.map((r) => r.spec.tag));
  return {
    openapi: '3.1.0',
    info: {
      title: 'Drover admin API',
      version: options.version,
      description:
        'The admin API of a Drover server: groups, instances, drains, the audit, the event stream and webhooks. JSON over HTTP; a bearer token with a role (viewer, operator, admin) and optionally limited to tenants. ' +
        'Generated from the routes\' own declarations (src/server/route-spec.ts). Agents connect to `/v1/agent` with a WebSocket, which this document does not describe (src/agent/protocol.ts does).',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: options.serverUrl ?? '/', description: options.serverUrl ? 'This server.' : 'The server this document was fetched from.' }],
    security: [{ bearerToken: [] }],
    tags: TAGS.filter((t) => used.has(t.name)).map((t) => ({ ...t })),
    paths,
    components: {
      schemas: writer.components,
      securitySchemes: {
        bearerToken: { type: 'http', scheme: 'bearer', description: 'An API token from the config (`server.token` or `server.tokens`), as `Authorization: Bearer <token>`.' },
      },
    },
  };
}
