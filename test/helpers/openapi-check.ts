/**
 * Checks API answers against a server's OpenAPI document (src/server/openapi.ts), with ajv
 * (JSON Schema 2020-12, OpenAPI 3.1's dialect, formats checked). The test harnesses run every
 * answer they get through `assertAnswer`, so an answer the document does not describe fails the
 * test that received it.
 *
 * What is checked: the request is matched to the document's path template (a static segment
 * beats a `{param}`, as fastify's router does), the status must be listed (or `default`), and a
 * JSON body must match that status's `application/json` schema. A path no route matches is the
 * server's 404, checked against `ErrorBody`. Non-JSON answers (the dashboard's files, metrics,
 * the event stream) are checked for their status only.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { OpenApiDocument } from '../../src/server/openapi.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

// ajv-formats is CommonJS: its default export is the function (or wraps it, by loader).
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (ajv: Ajv2020) => Ajv2020;

interface Template {
  path: string;
  segments: string[];
  operations: Record<string, JsonObject>;
}

/** `#/components/schemas/X` → `#/$defs/X`, so one operation's schema stands alone. */
function toDefs(value: Json): Json {
  if (Array.isArray(value)) return value.map(toDefs);
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/') ? `#/$defs/${v.slice('#/components/schemas/'.length)}` : toDefs(v);
  }
  return out;
}

export class OpenApiChecker {
  private readonly ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  private readonly templates: Template[];
  private readonly defs: JsonObject;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(readonly document: OpenApiDocument) {
    this.templates = Object.entries(document.paths).map(([path, operations]) => ({ path, segments: path.split('/').slice(1), operations }));
    this.defs = toDefs(document.components.schemas) as JsonObject;
  }

  /** Fetches the document a running server serves. */
  static async fetch(baseUrl: string, token?: string): Promise<OpenApiChecker> {
    const res = await fetch(`${baseUrl}/v1/openapi.json`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (res.status !== 200) throw new Error(`fetching ${baseUrl}/v1/openapi.json: HTTP ${res.status} ${await res.text()}`);
    return new OpenApiChecker((await res.json()) as OpenApiDocument);
  }

  /** The document's path template a request path matches, or null (a 404 of no route). */
  match(path: string): string | null {
    const segments = path.split('?')[0]!.split('/').slice(1);
    let best: { template: Template; score: number[] } | null = null;
    for (const template of this.templates) {
      if (template.segments.length !== segments.length) continue;
      const score: number[] = [];
      let ok = true;
      template.segments.forEach((s, i) => {
        const param = /^\{[^}]+\}$/.test(s);
        if (!param && s !== segments[i]) ok = false;
        if (param && segments[i] === '') ok = false;
        score.push(param ? 0 : 1);
      });
      if (!ok) continue;
      // Left to right, a static segment beats a parameter (fastify's router does the same).
      if (!best || score.join() > best.score.join()) best = { template, score };
    }
    return best?.template.path ?? null;
  }

  /** Why this answer does not match the document, or null when it does. */
  problem(method: string, path: string, status: number, contentType: string | null, body: unknown): string | null {
    const template = this.match(path);
    const json = contentType !== null && /^application\/json\b/.test(contentType);
    if (template === null) {
      if (status !== 404) return `${method} ${path}: no route of the document matches, yet the status is ${status}`;
      return json ? this.validate('ErrorBody', { $ref: '#/$defs/ErrorBody' }, body, `${method} ${path} (no route) 404`) : null;
    }
    const operation = this.templates.find((t) => t.path === template)!.operations[method.toLowerCase()];
    if (!operation) return status === 404 || status === 405 ? null : `${method} ${path}: the document has no ${method} operation for ${template}, yet the status is ${status}`;
    const responses = operation.responses as Record<string, JsonObject>;
    const key = String(status) in responses ? String(status) : 'default' in responses ? 'default' : null;
    if (key === null) return `${method} ${template}: status ${status} is not described (described: ${Object.keys(responses).join(', ')})`;
    if (!json || method === 'HEAD') return null;
    const content = (responses[key]!.content ?? {}) as Record<string, { schema?: Json }>;
    const schema = content['application/json']?.schema;
    if (schema === undefined) return `${method} ${template} ${status}: a JSON answer, but the document describes ${Object.keys(content).join(', ') || 'no body'}`;
    return this.validate(`${method} ${template} ${key}`, schema, body, `${method} ${path} ${status}`);
  }

  private validate(key: string, schema: Json, body: unknown, what: string): string | null {
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile({ ...(toDefs(schema) as JsonObject), $defs: this.defs });
      this.compiled.set(key, validate);
    }
    if (validate(body)) return null;
    const errors = (validate.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message ?? ''}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`);
    return `${what}: the answer does not match the OpenAPI description: ${errors.slice(0, 5).join('; ')}\nbody: ${JSON.stringify(body).slice(0, 500)}`;
  }

  /** Throws when the answer does not match the document (the harnesses call this on every answer). */
  assertAnswer(method: string, path: string, status: number, contentType: string | null, body: unknown): void {
    const problem = this.problem(method, path, status, contentType, body);
    if (problem) throw new Error(problem);
  }
}
