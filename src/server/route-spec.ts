/**
 * One declaration per route: method, URL, access, request schemas (params, query, body) and
 * response schemas per status, all zod. `defineRoute` registers it with fastify (the handler gets
 * the parsed, typed request parts; a part that does not parse is a 400 naming the field) and
 * keeps the declaration on the route's config, from which `openapi.ts` writes the OpenAPI
 * document. Nothing about a route's shapes is written anywhere else, so the two cannot disagree.
 *
 * Contracts:
 * - Parts are parsed in the order params, query, body, after authentication and leader routing
 *   (the onRequest hooks in http.ts and routing.ts): a caller without the role learns nothing
 *   about the input it would need.
 * - A body that is absent (no bytes, or JSON `null`) is parsed as `undefined`: a route whose body
 *   is optional declares `.optional()`. A route with no `body` schema ignores any body it is sent.
 * - `responses` lists what the route answers on success; `errors` the 4xx/5xx it answers with the
 *   server's error body (`errorBodySchema`). The statuses every route shares (401/403 for a
 *   private route, 307/503 for a /v1 change on a follower, 400 for one with inputs, 500) are
 *   added by the document builder, not by each route.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { InvalidRequestError } from '../errors/index.js';
import type { Access } from './auth.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** The server's answer to anything it refuses or fails at (every 4xx and 5xx). */
export const errorBodySchema = z
  .object({
    error: z.string().meta({ description: 'What went wrong, in words: "doing X: cause".' }),
    /** A change sent to a follower (307, 503): the leader's address, when known. */
    leader: z.string().nullable().optional().meta({ description: 'On 307 and 503 from leader routing: the leader the change belongs to, or null while none is known.' }),
  })
  .meta({ id: 'ErrorBody', description: "The server's error body: every 4xx and 5xx answer." });
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** A JSON answer: its schema. */
export interface JsonResponse {
  description: string;
  schema: z.ZodType;
  /** Response headers worth naming (e.g. `Link` for paging). */
  headers?: Record<string, string>;
}

/** An answer that is not JSON (the event stream, the metrics text, the dashboard's files). */
export interface RawResponse {
  description: string;
  contentType: string;
  headers?: Record<string, string>;
}

export type ResponseSpec = JsonResponse | RawResponse;

export const isJsonResponse = (r: ResponseSpec): r is JsonResponse => 'schema' in r;

/** The body a handler may return: the input of any of its JSON answers, or anything for a raw one. */
type Answer<R> = {
  [K in keyof R]: R[K] extends { schema: infer S extends z.ZodType } ? z.input<S> : R[K] extends RawResponse ? unknown : never;
}[keyof R];

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteContext<P, Q, B> {
  req: FastifyRequest;
  reply: FastifyReply;
  params: Parsed<P>;
  query: Parsed<Q>;
  body: Parsed<B>;
}

export interface RouteSpec<P extends z.ZodType | undefined = z.ZodType | undefined, Q extends z.ZodType | undefined = z.ZodType | undefined, B extends z.ZodType | undefined = z.ZodType | undefined, R extends Record<number, ResponseSpec> = Record<number, ResponseSpec>> {
  method: HttpMethod;
  /** Fastify's form: `/v1/groups/:tenant/:group`. */
  url: string;
  access: Access;
  /** The OpenAPI tag (a heading in the document). */
  tag: string;
  /** One line: what it does. */
  summary: string;
  description?: string;
  /** Path parameters: an object schema with one string field per `:name` in the URL. */
  params?: P;
  /** Query parameters: an object schema of optional strings (as they arrive). */
  query?: Q;
  /** The JSON body. */
  body?: B;
  /** The largest body accepted (default: the server's, 64 KiB). */
  bodyLimit?: number;
  /** The message of a 400 for a part that does not parse (default: `invalid <part>: <issues>`). */
  invalid?: (part: 'path' | 'query' | 'body', issues: string, req: FastifyRequest) => string;
  responses: R;
  /** The 4xx/5xx this route answers with the error body, and when. */
  errors?: Record<number, string>;
}

/** A route as declared (the type parameters forgotten): what the document builder reads. */
export type AnyRouteSpec = RouteSpec;

export type RouteHandler<P, Q, B, R> = (ctx: RouteContext<P, Q, B>) => Promise<Answer<R>>;

/** `field: message; ...`, the zod issues as a 400 says them. */
export function zodMessage(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

function parsePart(schema: z.ZodType | undefined, value: unknown, part: 'path' | 'query' | 'body', spec: AnyRouteSpec, req: FastifyRequest): unknown {
  if (!schema) return undefined;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = zodMessage(result.error);
  throw new InvalidRequestError(spec.invalid ? spec.invalid(part, issues, req) : `invalid ${part}: ${issues}`);
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's declaration (route-spec.ts); every route has one. */
    spec?: AnyRouteSpec;
  }
}

/**
 * Registers `spec` with `handler`. The handler's return value is the response body (set the
 * status first with `reply.code(...)` when it is not 200); its type must be one of the declared
 * answers'.
 */
export function defineRoute<P extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined, B extends z.ZodType | undefined = undefined, const R extends Record<number, ResponseSpec> = Record<number, ResponseSpec>>(
  app: FastifyInstance,
  spec: RouteSpec<P, Q, B, R>,
  handler: RouteHandler<P, Q, B, R>,
): void {
  const plain = spec as unknown as AnyRouteSpec;
  app.route({
    method: spec.method,
    url: spec.url,
    config: { access: spec.access, spec: plain },
    ...(spec.bodyLimit !== undefined ? { bodyLimit: spec.bodyLimit } : {}),
    handler: async (req, reply) => {
      const params = parsePart(spec.params, req.params ?? {}, 'path', plain, req) as Parsed<P>;
      const query = parsePart(spec.query, req.query ?? {}, 'query', plain, req) as Parsed<Q>;
      const body = parsePart(spec.body, req.body ?? undefined, 'body', plain, req) as Parsed<B>;
      return handler({ req, reply, params, query, body });
    },
  });
}
