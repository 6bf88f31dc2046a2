/**
 * The admin API (fastify): JSON over HTTP, bearer-token auth with roles and tenants, server-sent
 * events, the dashboard's files and the agents' WebSocket endpoint on one listener.
 *
 * Every request passes, in order: the target made canonical (auth.ts), the Host allow-list (421),
 * the origin check (403), authentication and the route's role (401/403), then leader routing
 * (routing.ts). Every mutating call validates first and then applies in one step: nothing is
 * half-applied. A 500 says only that it failed and which request to look for in the log.
 */
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import { z } from 'zod';
import Fastify, { type FastifyHttpsOptions, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Clock } from '../clock/index.js';
import type { ConfigLoader } from '../config/index.js';
import { TOKEN_ROLES } from '../config/schema.js';
import { DroverError, ForbiddenError, HIDDEN_STATUS, HTTP_STATUS, InvalidRequestError, MisdirectedRequestError, UnauthenticatedError } from '../errors/index.js';
import type { LeaderElector } from '../leader/index.js';
import type { DroverMetrics } from '../metrics/index.js';
import type { Reconciler } from '../reconciler/index.js';
import type { Logger } from '../logging/index.js';
import type { LocalDb } from '../store/index.js';
import type { AgentHub } from './agent-hub.js';
import type { Notifier } from '../notifications/index.js';
import { registerApiRoutes } from './api-routes.js';
import { registerBootstrapRoute, type BootstrapTokens } from './bootstrap.js';
import { ANONYMOUS_ADMIN, bearerToken, canonicalTarget, hasRole, type Access, type HostPolicy, type TokenTable } from './auth.js';
import type { EventBus } from './event-bus.js';
import { registerEventStream } from './events-route.js';
import { registerHookRoutes } from './hook-routes.js';
import { registerNotificationRoutes } from './notification-routes.js';
import { openApiDocument, type OpenApiDocument } from './openapi.js';
import { registerOperatorRoutes } from './operator-routes.js';
import { defineRoute, type AnyRouteSpec } from './route-spec.js';
import { registerLeaderRouting } from './routing.js';
import { registerStatic } from './static.js';

export interface HttpDeps {
  clock: Clock;
  logger: Logger;
  db: LocalDb;
  reconciler: Reconciler;
  configLoader: ConfigLoader;
  hub: AgentHub;
  bus: EventBus;
  metrics: DroverMetrics;
  elector: LeaderElector;
  /** The API's tokens in force (they follow config reloads); none = the API is open (on loopback only). */
  tokens: { readonly current: TokenTable };
  /** Names this server answers to (DNS rebinding). */
  hosts: HostPolicy;
  /** `/metrics` needs a token when true. */
  metricsToken: boolean;
  /** The longest a client may take to send its request. */
  requestTimeoutMs: number;
  /** Event-stream clients at once. */
  maxEventSubscribers: number;
  /** One-time agent bootstrap tokens: with them, `POST /v1/agent/bootstrap` is served (bootstrap.ts). */
  bootstrap?: BootstrapTokens;
  /** Serve HTTPS (and the agent endpoint as WSS) with these options (server/tls.ts); absent = plain HTTP. */
  https?: HttpsServerOptions | null;
  version: string;
  /** The webhook delivery worker: with it, `/v1/notifications...` is served (notification-routes.ts). */
  notifier?: Notifier;
}

const healthzSchema = z
  .strictObject({
    ok: z.literal(true),
    leader: z.boolean().meta({ description: 'This replica leads its shard.' }),
    version: z.string(),
    configError: z.string().nullable().meta({ description: 'Why the config file was last rejected (in detail only for a caller with a token), or null.' }),
  })
  .meta({ id: 'Healthz' });

const whoamiSchema = z
  .strictObject({
    name: z.string(),
    role: z.enum(TOKEN_ROLES),
    tenants: z.array(z.string()).nullable().meta({ description: 'The tenants the token is limited to, or null: every tenant.' }),
    authRequired: z.boolean().meta({ description: 'The server has tokens (false: the API is open, on loopback only).' }),
  })
  .meta({ id: 'Whoami' });

/** The document's outline, as the route declares its answer (its full shape is OpenAPI 3.1's). */
const openApiDocumentSchema = z
  .looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.looseObject({})) })
  .meta({ id: 'OpenApiDocument', description: 'An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0).' });

/** Marks a raw request whose target could not be made canonical (answered 400). */
const BAD_TARGET = Symbol('drover.badTarget');
type RawWithMark = { url?: string; [BAD_TARGET]?: string };

/** A route as registered: what tests and docs enumerate. */
export interface RouteInfo {
  method: string;
  url: string;
  access: Access;
  /** Its declaration (route-spec.ts): what the OpenAPI document is written from. */
  spec: AnyRouteSpec;
}

const ROUTES = new WeakMap<FastifyInstance, RouteInfo[]>();

/** Every route of a server built by buildHttpServer, with the access it needs. */
export function routesOf(app: FastifyInstance): readonly RouteInfo[] {
  return ROUTES.get(app) ?? [];
}

export async function buildHttpServer(deps: HttpDeps): Promise<FastifyInstance> {
  const { logger, metrics } = deps;
  const options: FastifyServerOptions = {
    logger: false,
    bodyLimit: 64 * 1024,
    forceCloseConnections: true,
    requestTimeout: deps.requestTimeoutMs,
    // Long enough for any name the API uses (63) and instance ids; longer ones match no route.
    routerOptions: { maxParamLength: 200 },
    rewriteUrl(req: IncomingMessage): string {
      const canonical = canonicalTarget(req.url ?? '/');
      if ('url' in canonical) return canonical.url;
      (req as RawWithMark)[BAD_TARGET] = canonical.error;
      return '/';
    },
    // Errors the router meets before any hook runs (a path part too long, a malformed path).
    frameworkErrors(err: Error & { statusCode?: number; code?: string }, _req: FastifyRequest, reply: FastifyReply): void {
      const status = err.statusCode ?? 400;
      void reply.code(status).send({ error: err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a part of the request path is longer than 200 characters' : 'the request path is not valid' });
    },
    // Errors the HTTP parser meets (a target or headers too long) get the API's error shape too.
    clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
      const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
      const status = tooLarge ? 431 : 400;
      const body = JSON.stringify({ error: tooLarge ? 'the request target or headers are too long' : 'the request could not be parsed' });
      if (socket.writable) {
        socket.end(`HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      } else {
        socket.destroy(err);
      }
    },
  };
  // (HTTPS and HTTP servers differ only in the listener; the routes are the same.)
  const app = (deps.https ? Fastify({ ...options, https: deps.https } as FastifyHttpsOptions<HttpsServer>) : Fastify(options)) as unknown as FastifyInstance;
  app.decorateRequest('principal', null);
  const routes: RouteInfo[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (route) => {
    const config = route.config;
    // Every route is declared (route-spec.ts `defineRoute`), so the OpenAPI document has them all.
    const spec = config?.spec;
    if (!spec) throw new Error(`registering ${String(route.method)} ${route.url}: every route is registered with defineRoute (src/server/route-spec.ts)`);
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, access: config.access ?? 'admin', spec });
  });

  // A POST with `Content-Type: application/json` and no body is a request without a body.
  const defaultJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body.toString();
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void defaultJson(req, text, done);
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    // The catalogue's table (src/errors) gives a DroverError its status; fastify's own 4xx
    // (a body that is not JSON, too large) keep theirs; anything else is a 500.
    const status =
      err instanceof DroverError
        ? HTTP_STATUS[err.code]
        : typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500
          ? err.statusCode
          : HIDDEN_STATUS;
    if (status === HIDDEN_STATUS) {
      // An error nobody meant to show: the detail goes to the log only (it may name files, hosts
      // or internals). Deliberate refusals (not the leader, too many clients: 503) keep their words.
      logger.error({ method: req.method, url: req.url, requestId: req.id, err: err.message, stack: err.stack }, 'request failed');
      void reply.code(status).send({ error: `internal error (request ${req.id}); the details are in the server's log` });
      return;
    }
    void reply.code(status).send({ error: err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` });
  });

  app.addHook('onRequest', async (req) => {
    const bad = (req.raw as RawWithMark)[BAD_TARGET];
    if (bad !== undefined) throw new InvalidRequestError(bad);
    const hostProblem = deps.hosts.check(req.headers.host);
    if (hostProblem) throw new MisdirectedRequestError(hostProblem);
    // Browsers send Origin on cross-site requests: refuse any that is not this server.
    const origin = req.headers.origin;
    if (origin === 'null') throw new ForbiddenError('requests from an opaque origin are refused');
    if (origin) {
      let sameOrigin: boolean;
      try {
        sameOrigin = new URL(origin).host === req.headers.host;
      } catch {
        sameOrigin = false;
      }
      if (!sameOrigin) throw new ForbiddenError(`requests from origin ${origin} are refused`);
    }
    const tokens = deps.tokens.current;
    req.principal = tokens.enabled ? tokens.authenticate(bearerToken(req.headers.authorization)) : ANONYMOUS_ADMIN;
    // The decision is the matched route's, whatever the target looked like. Nothing matched: the
    // answer is a 404 that reveals nothing.
    if (req.is404) return;
    const access = req.routeOptions.config.access ?? 'admin';
    if (access === 'public') return;
    const principal = req.principal;
    if (!principal) throw new UnauthenticatedError();
    if (!hasRole(principal, access)) throw new ForbiddenError(`token ${principal.name} (role ${principal.role}) may not do this: it needs the ${access} role`);
  });
  // HA: a replica that does not lead redirects mutating calls to the leader (after
  // authentication, so an unauthenticated caller learns nothing).
  registerLeaderRouting(app, deps.elector);
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpRequests.inc({ method: req.method, route: req.routeOptions.url ?? 'unknown', code: String(reply.statusCode) });
    logger.debug({ method: req.method, route: req.routeOptions.url, status: reply.statusCode }, 'request served');
  });

  // ---- health and metrics ---------------------------------------------------------------------
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/healthz',
      access: 'public',
      tag: 'server',
      summary: 'Is the server up, does it lead, was the config rejected',
      responses: { 200: { description: 'The server answers.', schema: healthzSchema } },
    },
    async ({ req }) => {
      const error = deps.configLoader.lastError;
      // The rejected file's detail (paths, values) is for callers with a token.
      const configError = error ? (req.principal ? error.message : 'the config file was rejected; the previous config stays in force (details for callers with a token)') : null;
      return { ok: true as const, leader: deps.elector.isLeader(), version: deps.version, configError };
    },
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/metrics',
      access: deps.metricsToken ? 'viewer' : 'public',
      tag: 'server',
      summary: 'Prometheus metrics',
      responses: { 200: { description: 'The metrics in the Prometheus text format.', contentType: 'text/plain; version=0.0.4' } },
    },
    async ({ reply }) => {
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/whoami',
      access: 'viewer',
      tag: 'server',
      summary: 'Who the server takes the caller for',
      responses: { 200: { description: "The caller's token: its name, role and tenants.", schema: whoamiSchema } },
    },
    async ({ req }) => {
      const p = req.principal ?? ANONYMOUS_ADMIN;
      return { name: p.name, role: p.role, tenants: p.tenants ? [...p.tenants].sort() : null, authRequired: deps.tokens.current.enabled };
    },
  );
  // The document describes this server's routes as configured (whether webhooks and agent
  // bootstrap are served, whether /metrics needs a token): that is for callers with a token, as
  // the config's detail in /healthz is. Anyone can write the generic one from the source.
  let document: OpenApiDocument | null = null;
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/openapi.json',
      access: 'viewer',
      tag: 'server',
      summary: 'This API described in OpenAPI 3.1',
      description: "Written from the routes' own declarations when first asked for; the same for every caller.",
      responses: { 200: { description: 'The OpenAPI 3.1 document of this server.', schema: openApiDocumentSchema } },
    },
    async () => {
      document ??= openApiDocument(
        routes.map((r) => ({ method: r.method, url: r.url, spec: r.spec })),
        { version: deps.version },
      );
      return document;
    },
  );

  registerApiRoutes(app, deps);
  registerOperatorRoutes(app, { reconciler: deps.reconciler, db: deps.db, clock: deps.clock });
  registerHookRoutes(app, { reconciler: deps.reconciler, db: deps.db });
  if (deps.notifier) registerNotificationRoutes(app, { db: deps.db, notifier: deps.notifier, clock: deps.clock });
  registerEventStream(app, deps);
  // Agents exchanging a one-time bootstrap token for their credential (public: the token is the proof).
  if (deps.bootstrap) registerBootstrapRoute(app, { tokens: deps.bootstrap, logger, onResult: (result) => metrics.agentBootstraps.inc({ result }) });
  // The web dashboard (static files at /): public, they hold no data.
  registerStatic(app);

  // ---- agents (WebSocket upgrade on the same port) --------------------------------------------
  app.server.on('upgrade', (req, socket, head) => {
    const canonical = canonicalTarget(req.url ?? '/');
    const hostProblem = deps.hosts.check(req.headers.host);
    if (!('url' in canonical) || hostProblem) {
      socket.end(`HTTP/1.1 ${hostProblem ? '421 Misdirected Request' : '400 Bad Request'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    req.url = canonical.url;
    if (!deps.hub.handleUpgrade(req, socket, head)) socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
  });

  await app.ready();
  return app;
}
