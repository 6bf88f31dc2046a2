/**
 * The Prometheus client against a loopback HTTP server that answers as Prometheus's HTTP API
 * does (https://prometheus.io/docs/prometheus/latest/querying/api/): values, no sample, NaN,
 * several series, error answers, a server that does not answer, timeouts, size limits, auth.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_ANSWER_BYTES, PrometheusClient, type QueryAnswer, type QuerySpec } from '../../src/autoscale/index.js';
import { ManualClock, SystemClock } from '../../src/clock/index.js';
import { freePort } from '../e2e/process-harness.js';

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  form: URLSearchParams;
}

let server: Server;
let base: string;
let seen: Seen[];
let answer: (res: ServerResponse) => void;
let dir: string;

const json = (status: number, body: unknown) => (res: ServerResponse) => {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
};
const vector = (...values: string[]) => json(200, { status: 'success', data: { resultType: 'vector', result: values.map((v, i) => ({ metric: { job: `web${i}` }, value: [1767225600.5, v] })) } });

beforeEach(async () => {
  seen = [];
  dir = mkdtempSync(join(tmpdir(), 'drover-prom-'));
  answer = vector('1');
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, form: new URLSearchParams(body) });
      answer(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const spec = (over: Partial<QuerySpec> = {}): QuerySpec => ({ prometheus: base, query: 'sum(rate(http_requests_total{job="web"}[2m]))', queryTimeoutMs: 5_000, bearerTokenFile: null, ...over });
const client = new PrometheusClient(new SystemClock());

function failure(a: QueryAnswer): { kind: string; message: string; retryable: boolean } {
  if (a.ok) throw new Error(`expected a failure, got the value ${a.value}`);
  return { kind: a.kind, message: a.error.message, retryable: a.error.retryable };
}

describe('PrometheusClient', () => {
  it('posts the query to /api/v1/query (form-encoded, with the time and timeout) and reads the one sample of a vector', async () => {
    answer = vector('1234.5');
    const clock = new ManualClock(new Date('2026-03-02T10:00:00.250Z'));
    const a = await new PrometheusClient(clock).query(spec({ prometheus: `${base}/prom/` }));
    expect(a).toEqual({ ok: true, value: 1234.5 });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe('POST');
    expect(seen[0]!.path).toBe('/prom/api/v1/query');
    expect(seen[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(seen[0]!.form.get('query')).toBe('sum(rate(http_requests_total{job="web"}[2m]))');
    expect(seen[0]!.form.get('time')).toBe('1772445600.250');
    expect(seen[0]!.form.get('timeout')).toBe('5000ms');
    expect(seen[0]!.headers.authorization).toBeUndefined();
  });

  it('reads a scalar', async () => {
    answer = json(200, { status: 'success', data: { resultType: 'scalar', result: [1767225600, '42'] } });
    expect(await client.query(spec())).toEqual({ ok: true, value: 42 });
  });

  it('calls a vector of no sample "no sample", not zero', async () => {
    answer = vector();
    expect(failure(await client.query(spec()))).toEqual({ kind: 'no_value', message: `querying Prometheus ${base}: no sample (the query matched no series)`, retryable: true });
  });

  it.each(['NaN', '+Inf', '-Inf'])('calls a value of %s "not a number"', async (v) => {
    answer = vector(v);
    expect(failure(await client.query(spec()))).toEqual({ kind: 'no_value', message: `querying Prometheus ${base}: the query's value is ${v}, not a number`, retryable: true });
  });

  it('refuses more than one series and asks for an aggregation', async () => {
    answer = vector('1', '2');
    const f = failure(await client.query(spec()));
    expect(f.kind).toBe('error');
    expect(f.message).toBe(`querying Prometheus ${base}: the query gave 2 series; it must give one: aggregate it (sum(...), max(...))`);
    expect(f.retryable).toBe(false);
  });

  it('refuses a range vector (matrix) and a string', async () => {
    answer = json(200, { status: 'success', data: { resultType: 'matrix', result: [] } });
    expect(failure(await client.query(spec())).message).toBe(`querying Prometheus ${base}: the query gives a matrix; it must give an instant vector of one series or a scalar`);
    answer = json(200, { status: 'success', data: { resultType: 'string', result: [1, 'x'] } });
    expect(failure(await client.query(spec())).message).toContain('the query gives a string');
  });

  it("reports Prometheus's own error (errorType and error); bad_data is not retryable", async () => {
    answer = json(400, { status: 'error', errorType: 'bad_data', error: '1:5: parse error: unexpected end of input' });
    expect(failure(await client.query(spec()))).toEqual({ kind: 'error', message: `querying Prometheus ${base}: HTTP 400: bad_data: 1:5: parse error: unexpected end of input`, retryable: false });
    answer = json(503, { status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' });
    expect(failure(await client.query(spec()))).toEqual({ kind: 'error', message: `querying Prometheus ${base}: HTTP 503: timeout: query timed out in expression evaluation`, retryable: true });
  });

  it('refuses an answer that is not JSON, or not the documented shape', async () => {
    answer = (res) => {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html>bad gateway</html>');
    };
    expect(failure(await client.query(spec())).message).toBe(`querying Prometheus ${base}: HTTP 502 with an answer that is not JSON: <html>bad gateway</html>`);
    answer = json(200, { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: ['x', 1] }] } });
    expect(failure(await client.query(spec())).message).toMatch(new RegExp(`^querying Prometheus ${base}: the answer is not a Prometheus query result: data\\.result\\.0\\.value\\.0: `));
  });

  it('says which address did not answer', async () => {
    const port = await freePort();
    const f = failure(await client.query(spec({ prometheus: `http://127.0.0.1:${port}` })));
    expect(f.kind).toBe('error');
    expect(f.message).toMatch(new RegExp(`^querying Prometheus http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  it('gives up after queryTimeout on the clock', async () => {
    answer = () => undefined; // never answers
    const clock = new ManualClock();
    const pending = new PrometheusClient(clock).query(spec({ queryTimeoutMs: 2_000 }));
    await expect.poll(() => seen.length).toBe(1);
    await clock.advance(2_000);
    expect(failure(await pending)).toEqual({ kind: 'timeout', message: `querying Prometheus ${base}: timed out after 2000 ms`, retryable: true });
  });

  it('is abandoned when its signal aborts (the autoscaler stopping)', async () => {
    answer = () => undefined; // never answers
    const stop = new AbortController();
    const pending = client.query(spec(), stop.signal);
    await expect.poll(() => seen.length).toBe(1);
    stop.abort();
    const f = failure(await pending);
    expect(f.kind).toBe('error');
    expect(f.message).toMatch(new RegExp(`^querying Prometheus ${base}: .*abort`, 'i'));
  });

  it('refuses an answer longer than the limit', async () => {
    answer = (res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(`{"status":"success","data":{"resultType":"vector","result":[${'{"metric":{},"value":[1,"1"]},'.repeat(40_000)}]}}`);
    };
    expect(failure(await client.query(spec())).message).toBe(`querying Prometheus ${base}: the answer is longer than ${MAX_ANSWER_BYTES} bytes`);
  });

  it('sends the bearer token of bearerTokenFile, read at each query, and never shows it', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 's3cret-one\n');
    await client.query(spec({ bearerTokenFile: file }));
    writeFileSync(file, 's3cret-two\n');
    answer = json(401, { status: 'error', errorType: 'unauthorized', error: 'denied' });
    const f = failure(await client.query(spec({ bearerTokenFile: file })));
    expect(seen.map((s) => s.headers.authorization)).toEqual(['Bearer s3cret-one', 'Bearer s3cret-two']);
    expect(f.message).not.toContain('s3cret');
    const missing = failure(await client.query(spec({ bearerTokenFile: join(dir, 'nope') })));
    expect(missing.message).toBe(`querying Prometheus ${base}: reading autoscale.bearerTokenFile ${join(dir, 'nope')}: ENOENT`);
  });

  it('sends a user and password of the URL as basic auth, and leaves them out of every message', async () => {
    const withUser = base.replace('http://', 'http://ops:p%40ss@');
    answer = vector();
    const f = failure(await client.query(spec({ prometheus: withUser })));
    expect(seen[0]!.headers.authorization).toBe(`Basic ${Buffer.from('ops:p@ss').toString('base64')}`);
    expect(f.message).toBe(`querying Prometheus ${base}: no sample (the query matched no series)`);
    expect(f.message).not.toContain('ops');
  });
});
