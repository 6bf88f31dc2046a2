/**
 * A Prometheus instant query (`POST /api/v1/query`, form-encoded `query`, `time`, `timeout`), as
 * the HTTP API reference documents it: https://prometheus.io/docs/prometheus/latest/querying/api/
 *
 * Contracts:
 * - One number or a reason why there is none; `query` never throws. Every reason reads
 *   "querying Prometheus <url>: cause", with the URL's user and password left out.
 * - The answer is checked against the documented envelope: `{status: "success", data:
 *   {resultType, result}}` or `{status: "error", errorType, error}`. A `vector` of one sample or a
 *   `scalar` gives its value; a vector of no sample is "no sample" (the series is absent: no
 *   data, not zero); more than one series is an error that asks for an aggregation (`sum(...)`);
 *   a value of NaN or ±Inf is "no number". `matrix` and `string` results are refused.
 * - The request is aborted after `timeoutMs` on the clock (and Prometheus is told the same
 *   timeout); an answer longer than MAX_ANSWER_BYTES is refused and reading stops there.
 * - A bearer token is read from `bearerTokenFile` at each query (a rotated token applies at
 *   once); a user and password in the URL are sent as basic auth. Neither appears in any message.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Clock } from '../clock/index.js';
import type { AutoscaleSpec } from '../config/index.js';
import { InvalidRequestError, SettingError, TimeoutError, UnavailableError, errorMessage, type DroverError } from '../errors/index.js';
import { readLimited } from '../util/read-limited.js';

/** The longest answer read (a single-series answer is a few hundred bytes). */
export const MAX_ANSWER_BYTES = 1_048_576;

/** How much of Prometheus's own error text a reason quotes. */
const MAX_QUOTED = 500;

/** What a query gave: its value, or why there is none (`kind` for the metrics). */
export type QueryAnswer =
  | { ok: true; value: number }
  | { ok: false; kind: 'no_value' | 'error' | 'timeout'; error: DroverError };

export type QuerySpec = Pick<AutoscaleSpec, 'prometheus' | 'query' | 'queryTimeoutMs' | 'bearerTokenFile'>;

/** A sample value is a string: a decimal number, or NaN, +Inf, -Inf. */
const sampleValue = z.tuple([z.number(), z.string()]);
const vectorSample = z.object({ metric: z.record(z.string(), z.string()), value: sampleValue.optional(), histogram: z.unknown().optional() });

const successSchema = z.object({
  status: z.literal('success'),
  data: z.discriminatedUnion('resultType', [
    z.object({ resultType: z.literal('vector'), result: z.array(vectorSample) }),
    z.object({ resultType: z.literal('scalar'), result: sampleValue }),
    z.object({ resultType: z.literal('matrix'), result: z.array(z.unknown()) }),
    z.object({ resultType: z.literal('string'), result: z.unknown() }),
  ]),
});
const errorSchema = z.object({ status: z.literal('error'), errorType: z.string(), error: z.string() });

/** The URL as messages show it: no user, no password, no trailing slash. */
export function displayUrl(base: string): string {
  try {
    const url = new URL(base);
    url.username = '';
    url.password = '';
    return url.toString().replace(/\/+$/, '');
  } catch {
    return '(an invalid URL)';
  }
}

const quote = (text: string): string => (text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text);

export class PrometheusClient {
  constructor(
    private readonly clock: Clock,
    /** Default: the global fetch (tests may pass another). */
    private readonly fetchFn: typeof fetch = fetch,
  ) {}

  /** Evaluates `spec.query` at the clock's now; `signal` abandons it. Never throws (see the module comment). */
  async query(spec: QuerySpec, signal?: AbortSignal): Promise<QueryAnswer> {
    const action = `querying Prometheus ${displayUrl(spec.prometheus)}`;
    try {
      const parsed = await this.request(spec, action, signal);
      return 'value' in parsed ? { ok: true, value: parsed.value } : { ok: false, kind: 'no_value', error: parsed.noValue };
    } catch (err) {
      if (err instanceof TimeoutError) return { ok: false, kind: 'timeout', error: err };
      if (err instanceof SettingError || err instanceof InvalidRequestError || err instanceof UnavailableError) return { ok: false, kind: 'error', error: err };
      return { ok: false, kind: 'error', error: new UnavailableError(`${action}: ${errorMessage(err)}`, err) };
    }
  }

  private async request(spec: QuerySpec, action: string, signal: AbortSignal | undefined): Promise<Parsed> {
    const url = new URL(spec.prometheus);
    const headers: Record<string, string> = { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' };
    if (spec.bearerTokenFile) {
      headers.Authorization = `Bearer ${await readToken(spec.bearerTokenFile, action)}`;
    } else if (url.username || url.password) {
      headers.Authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
    }
    url.username = '';
    url.password = '';
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v1/query`;
    const body = new URLSearchParams({ query: spec.query, time: (this.clock.nowMs() / 1000).toFixed(3), timeout: `${spec.queryTimeoutMs}ms` });

    const controller = new AbortController();
    let timedOut = false;
    const timer = this.clock.schedule(this.clock.nowMs() + spec.queryTimeoutMs, () => {
      timedOut = true;
      controller.abort();
    });
    const abandon = (): void => controller.abort();
    signal?.addEventListener('abort', abandon, { once: true });
    if (signal?.aborted) controller.abort();
    let status: number;
    let text: string;
    try {
      const res = await this.fetchFn(url, { method: 'POST', headers, body: body.toString(), signal: controller.signal, redirect: 'error' });
      status = res.status;
      text = await readAnswer(res, action);
    } catch (err) {
      if (timedOut) throw new TimeoutError(action, spec.queryTimeoutMs);
      if (err instanceof InvalidRequestError) throw err;
      throw new UnavailableError(`${action}: ${causeOf(err)}`, err);
    } finally {
      timer.cancel();
      signal?.removeEventListener('abort', abandon);
    }
    return valueOf(status, text, action);
  }
}

/** An answer's number, or why it holds none now (no sample, NaN, ±Inf: the query may give one later). */
export type Parsed = { value: number } | { noValue: UnavailableError };

async function readToken(file: string, action: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new SettingError(`${action}: reading autoscale.bearerTokenFile ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, err);
  }
  if (!token) throw new SettingError(`${action}: autoscale.bearerTokenFile ${file} is empty`);
  if (/[\r\n]/.test(token)) throw new SettingError(`${action}: autoscale.bearerTokenFile ${file} holds more than one line`);
  return token;
}

/** fetch's "fetch failed" says nothing: its cause (ECONNREFUSED ...) does. */
function causeOf(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : null;
  const code = cause && 'code' in cause && typeof cause.code === 'string' ? cause.code : null;
  if (cause) return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  return errorMessage(err);
}

function readAnswer(res: Response, action: string): Promise<string> {
  return readLimited(res, MAX_ANSWER_BYTES, () => new InvalidRequestError(`${action}: the answer is longer than ${MAX_ANSWER_BYTES} bytes`));
}

/** The number a sample value string holds; NaN and ±Inf hold none. */
function sampleNumber(text: string, action: string): Parsed {
  if (/^[+-]?(Inf|NaN)$/i.test(text.trim())) return { noValue: new UnavailableError(`${action}: the query's value is ${text.trim()}, not a number`) };
  const n = text.trim() === '' ? Number.NaN : Number(text);
  if (!Number.isFinite(n)) throw new UnavailableError(`${action}: the sample value "${quote(text)}" is not a number`);
  return { value: n };
}

/** The value an answer holds (see the module comment). */
export function valueOf(status: number, text: string, action: string): Parsed {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UnavailableError(`${action}: HTTP ${status} with an answer that is not JSON${status === 200 ? '' : `: ${quote(text.trim())}`}`);
  }
  const failed = errorSchema.safeParse(json);
  if (failed.success) {
    const { errorType, error } = failed.data;
    // bad_data: the query itself is wrong (it will not get better by asking again).
    const message = `${action}: HTTP ${status}: ${errorType}: ${quote(error)}`;
    throw errorType === 'bad_data' ? new InvalidRequestError(message) : new UnavailableError(message);
  }
  if (status < 200 || status > 299) throw new UnavailableError(`${action}: HTTP ${status}`);
  const answer = successSchema.safeParse(json);
  if (!answer.success) {
    throw new UnavailableError(`${action}: the answer is not a Prometheus query result: ${answer.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  const { data } = answer.data;
  switch (data.resultType) {
    case 'scalar':
      return sampleNumber(data.result[1], action);
    case 'vector': {
      if (data.result.length === 0) return { noValue: new UnavailableError(`${action}: no sample (the query matched no series)`) };
      if (data.result.length > 1) {
        throw new InvalidRequestError(`${action}: the query gave ${data.result.length} series; it must give one: aggregate it (sum(...), max(...))`);
      }
      const sample = data.result[0]!;
      if (!sample.value) throw new UnavailableError(`${action}: the sample is a histogram, not a number`);
      return sampleNumber(sample.value[1], action);
    }
    default:
      throw new InvalidRequestError(`${action}: the query gives a ${data.resultType}; it must give an instant vector of one series or a scalar`);
  }
}
