/**
 * The CLI's HTTP client for the admin API. Resolves the servers from `--server` or DROVER_SERVER
 * (one URL, or several replicas comma-separated, tried in order), the token from `--token` or
 * DROVER_TOKEN, and TLS material from `--ca`/DROVER_CA and `--client-cert`/`--client-key`
 * (DROVER_CLIENT_CERT/DROVER_CLIENT_KEY); classifies failures into the CLI's exit codes.
 *
 * The token stays home: it is only ever sent to a listed server. A redirect (a follower sends a
 * change to its leader with 307) is followed only to the origin of a listed server, and never
 * from https to http; anything else is an error naming where the redirect pointed.
 *
 * Built on node:http/node:https rather than global fetch: fetch cannot be given a CA or a client
 * certificate without the `undici` package, and node:https takes both directly.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { createSecureContext } from 'node:tls';

export const EXIT = {
  ok: 0,
  /** The server refused or failed the request, or a local operation failed. */
  error: 1,
  /** Bad command line. */
  usage: 2,
  /** The server could not be reached. */
  unreachable: 3,
  /** `--wait` gave up. */
  timeout: 4,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** One server URL, or several replicas comma-separated (tried in order). Default: DROVER_SERVER, else http://127.0.0.1:7400. */
  server?: string;
  token?: string;
  /** PEM file of the CA(s) an https server is verified against, instead of the system's. Default: DROVER_CA. */
  ca?: string;
  /** PEM files of a client certificate and its key, for a server that requires mutual TLS. Default: DROVER_CLIENT_CERT / DROVER_CLIENT_KEY. */
  clientCert?: string;
  clientKey?: string;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:7400';
/** Redirects followed for one request (a follower → the leader is one). */
const MAX_REDIRECTS = 3;
/**
 * How long a replica gets to accept a connection (DNS included) before the next is tried. Only
 * the connection is timed: a request that was sent is never retried elsewhere (a change could
 * apply twice), and the event stream is idle for long stretches by design.
 */
const CONNECT_TIMEOUT_MS = 10_000;

/** An empty environment variable counts as unset, as shells and CI systems often leave them. */
function fromEnv(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value.trim() === '' ? undefined : value;
}

/**
 * `--server`/DROVER_SERVER: one or more http(s) URLs, comma-separated. Each must be a plain base
 * URL (a path prefix is allowed; credentials, query and fragment are not). Throws a usage
 * CliError naming the bad entry.
 */
export function parseServers(text: string | undefined): URL[] {
  const entries = (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (entries.length === 0) entries.push(DEFAULT_SERVER);
  return entries.map((entry) => {
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new CliError(`--server: not a URL: ${entry}`, EXIT.usage);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CliError(`--server: ${entry}: must be an http:// or https:// URL`, EXIT.usage);
    if (url.username || url.password) throw new CliError(`--server: ${where(url)}: credentials do not belong in the URL; use --token or DROVER_TOKEN`, EXIT.usage);
    if (url.search || url.hash) throw new CliError(`--server: ${entry}: must not have a query or fragment`, EXIT.usage);
    url.pathname = url.pathname.replace(/\/+$/, '');
    return url;
  });
}

/** scheme://host:port, the port always given: what a user compares with what they listed. */
function where(url: URL): string {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return `${url.protocol}//${url.hostname}:${port}`;
}

/** A connection that never came up: no byte of the request left, so the next replica may be tried. */
class NotConnected extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

interface Answer {
  res: IncomingMessage;
  url: URL;
}

interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** Pages of a list followed at most (a server that links pages in a loop must not hang the CLI). */
const MAX_PAGES = 1_000;

/** The path of the `rel="next"` link of a Link header, when it is a path on the same server. */
export function nextPage(link: string | null): string | null {
  if (!link) return null;
  for (const part of link.split(',')) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match && /(^|;)\s*rel="?next"?\s*(;|$)/.test(match[2] ?? '') && (match[1] ?? '').startsWith('/') && !(match[1] ?? '').startsWith('//')) return match[1] ?? null;
  }
  return null;
}

export class ApiClient {
  /** The listed servers, in the order they are tried. */
  readonly servers: readonly URL[];
  /** The first listed server's base URL. */
  readonly base: string;
  private readonly origins: ReadonlySet<string>;
  private readonly token: string | undefined;
  private readonly httpAgent = new http.Agent({ keepAlive: false });
  private readonly httpsAgent: https.Agent;

  constructor(options: ClientOptions) {
    this.servers = parseServers(options.server ?? fromEnv('DROVER_SERVER'));
    this.base = baseOf(this.servers[0] as URL);
    this.origins = new Set(this.servers.map((u) => u.origin));
    this.token = options.token || fromEnv('DROVER_TOKEN');
    this.httpsAgent = new https.Agent({ keepAlive: false, ...loadTls(options) });
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const actor = process.env.USER ?? process.env.LOGNAME;
    return {
      ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
      ...(actor && /^[\w.@-]{1,64}$/.test(actor) ? { 'X-Drover-Actor': actor } : {}),
      ...extra,
    };
  }

  /**
   * Performs a request; throws CliError with the server's own message on failure. A replica that
   * does not lead answers a change with 307 to the leader: followed (at most 3 hops, with the
   * token) when the leader is a listed server.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.exchange<T>(method, path, body)).data;
  }

  /**
   * GETs a list the server pages (RFC 8288 `Link: <...>; rel="next"`), following every page.
   * The next page must be a path on the same server: a link elsewhere is not followed.
   */
  async requestAllPages<T>(path: string): Promise<T[]> {
    const all: T[] = [];
    let next: string | null = path;
    for (let page = 0; next !== null && page < MAX_PAGES; page++) {
      const answer: { data: T[]; link: string | null } = await this.exchange<T[]>('GET', next);
      all.push(...answer.data);
      next = nextPage(answer.link);
    }
    return all;
  }

  private async exchange<T>(method: string, path: string, body?: unknown): Promise<{ data: T; link: string | null }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { res } = await this.open(method, path, this.headers(payload === undefined ? {} : { 'Content-Type': 'application/json' }), payload);
    const text = await readBody(res, `${method} ${path}`);
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const message = data && typeof data === 'object' && 'error' in data && typeof data.error === 'string' ? data.error : `HTTP ${status}`;
      throw new CliError(`${method} ${path}: ${message} (HTTP ${status})`, EXIT.error);
    }
    const link = res.headers.link;
    return { data: data as T, link: typeof link === 'string' ? link : null };
  }

  /**
   * Opens the event stream (on the first listed server that answers); calls `onEvent` for each
   * event until the stream ends or `signal` aborts (then it returns).
   */
  async stream(path: string, onEvent: (type: string, data: unknown, id: string | null) => void, signal?: AbortSignal): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.open('GET', path, this.headers({ Accept: 'text/event-stream' }), undefined, signal);
    } catch (err) {
      if (signal?.aborted) return;
      throw err;
    }
    const { res } = answer;
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const text = await readBody(res, `GET ${path}`);
      throw new CliError(`GET ${path}: ${text || `HTTP ${status}`} (HTTP ${status})`, EXIT.error);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res as AsyncIterable<Buffer>) {
        buffer += decoder.decode(chunk, { stream: true });
        let boundary = buffer.indexOf('\n\n');
        while (boundary >= 0) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          boundary = buffer.indexOf('\n\n');
          let type = 'message';
          let id: string | null = null;
          const dataLines: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) dataLines.push(line.slice(6));
            else if (line.startsWith('id: ')) id = line.slice(4);
          }
          if (dataLines.length === 0) continue;
          let data: unknown = dataLines.join('\n');
          try {
            data = JSON.parse(data as string);
          } catch {
            // keep text
          }
          onEvent(type, data, id);
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw new CliError(`reading the event stream from ${where(answer.url)}: ${describeError(err)}`, EXIT.unreachable);
    }
  }

  /**
   * Sends the request to the first listed server that accepts a connection, then follows
   * redirects that stay among the listed servers. Resolves with the final response.
   */
  private async open(method: string, path: string, headers: Record<string, string>, body: string | undefined, signal?: AbortSignal): Promise<Answer> {
    const tried: string[] = [];
    let answer: Answer | undefined;
    for (const server of this.servers) {
      const url = new URL(`${baseOf(server)}${path}`);
      try {
        answer = { res: await this.send(url, method, headers, body, signal), url };
        break;
      } catch (err) {
        if (!(err instanceof NotConnected)) throw err;
        tried.push(`${where(url)}: ${err.detail}`);
      }
    }
    if (!answer) {
      const message = tried.length === 1 ? `cannot reach the Drover server at ${tried[0]}` : `cannot reach any Drover server (tried ${tried.join('; ')})`;
      throw new CliError(message, EXIT.unreachable);
    }
    for (let hop = 0; ; hop++) {
      const { res, url } = answer;
      const location = res.headers.location;
      if ((res.statusCode !== 307 && res.statusCode !== 308) || !location) return answer;
      res.resume();
      const next = this.redirectTarget(`${method} ${path}`, url, location, hop);
      try {
        answer = { res: await this.send(next, method, headers, body, signal), url: next };
      } catch (err) {
        if (!(err instanceof NotConnected)) throw err;
        const role = res.headers['x-drover-leader'] ? 'the leader' : 'the server';
        throw new CliError(`cannot reach the Drover server at ${where(next)}, ${role} that ${where(url)} redirected to: ${err.detail}`, EXIT.unreachable);
      }
    }
  }

  /** Where a redirect from `from` leads, when it may be followed; otherwise a CliError saying why not. */
  private redirectTarget(what: string, from: URL, location: string, hop: number): URL {
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      throw new CliError(`${what}: the server at ${where(from)} redirected to ${JSON.stringify(location)}, which is not a URL; not following`, EXIT.error);
    }
    const carried = this.token ? 'the token' : 'the request';
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new CliError(`${what}: the server at ${where(from)} redirected to ${next.protocol}//${next.host}, which is not http(s); not following`, EXIT.error);
    }
    if (from.protocol === 'https:' && next.protocol === 'http:') {
      throw new CliError(`${what}: the server at ${where(from)} redirected to ${where(next)}, from https to http; not following (${carried} would travel unencrypted)`, EXIT.error);
    }
    if (!this.origins.has(next.origin)) {
      throw new CliError(
        `${what}: the server at ${where(from)} redirected to ${where(next)}, which is not one of the --server replicas; not following (${carried} would leave). If it is one of yours, list it in --server or DROVER_SERVER`,
        EXIT.error,
      );
    }
    if (hop >= MAX_REDIRECTS) {
      throw new CliError(`${what}: redirected more than ${MAX_REDIRECTS} times (last from ${where(from)} to ${where(next)}); not following`, EXIT.error);
    }
    return next;
  }

  /**
   * One HTTP exchange. Rejects with NotConnected when no connection was made (refused, DNS,
   * timeout), with a CliError when the TLS handshake failed or the connection broke after the
   * request may have been sent.
   */
  private send(url: URL, method: string, headers: Record<string, string>, body: string | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const secure = url.protocol === 'https:';
      let phase: 'connecting' | 'handshaking' | 'connected' = 'connecting';
      const req = (secure ? https : http).request(
        url,
        { method, headers: { ...headers, ...(method === 'GET' || method === 'HEAD' ? {} : { 'Content-Length': String(Buffer.byteLength(body ?? '')) }) }, agent: secure ? this.httpsAgent : this.httpAgent, ...(signal ? { signal } : {}) },
        (res) => {
          clearTimeout(timer);
          resolve(res);
        },
      );
      // A socket-level error in Node's own shape (code ETIMEDOUT), not a CliError: it goes through
      // req's 'error' handler below, which turns it into NotConnected or a CliError by phase.
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`timed out after ${CONNECT_TIMEOUT_MS / 1000}s`), { code: 'ETIMEDOUT' })), CONNECT_TIMEOUT_MS);
      req.on('socket', (socket) => {
        const connected = (): void => {
          phase = 'connected';
          clearTimeout(timer);
        };
        if (!socket.connecting) return connected();
        socket.once('connect', () => (secure ? (phase = 'handshaking') : connected()));
        if (secure) socket.once('secureConnect', connected);
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        if (signal?.aborted) return reject(err);
        if (phase === 'connecting') return reject(new NotConnected(describeError(err)));
        if (phase === 'handshaking') {
          return reject(new CliError(`connecting securely to the Drover server at ${where(url)}: ${describeError(err)} (a server with a private CA needs --ca FILE or DROVER_CA)`, EXIT.error));
        }
        reject(new CliError(`${method} ${url.pathname}: the connection to ${where(url)} failed: ${describeError(err)}`, EXIT.unreachable));
      });
      req.end(body);
    });
  }
}

function baseOf(server: URL): string {
  return server.toString().replace(/\/+$/, '');
}

/** The CA and client certificate files, read once; a missing or unusable one is a usage error. */
function loadTls(options: ClientOptions): TlsMaterial {
  const read = (flag: string, path: string | undefined): Buffer | undefined => {
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CliError(`${flag}: reading ${path}: ${describeError(err)}`, EXIT.usage);
    }
  };
  const caPath = options.ca || fromEnv('DROVER_CA');
  const certPath = options.clientCert || fromEnv('DROVER_CLIENT_CERT');
  const keyPath = options.clientKey || fromEnv('DROVER_CLIENT_KEY');
  if (Boolean(certPath) !== Boolean(keyPath)) {
    throw new CliError('a client certificate needs its key and the other way round: give both --client-cert and --client-key (DROVER_CLIENT_CERT and DROVER_CLIENT_KEY)', EXIT.usage);
  }
  const tls: TlsMaterial = {};
  const ca = read('--ca', caPath);
  const cert = read('--client-cert', certPath);
  const key = read('--client-key', keyPath);
  if (ca) tls.ca = ca;
  if (cert && key) {
    tls.cert = cert;
    tls.key = key;
  }
  // Checked now, so a wrong file is named as such rather than failing later as a refused server
  // (Node silently ignores a CA file with no certificate in it).
  if (tls.ca) checkCertificates(`--ca: ${caPath ?? ''}`, tls.ca);
  try {
    if (tls.cert) createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (err) {
    throw new CliError(`--client-cert/--client-key: ${certPath ?? ''}, ${keyPath ?? ''}: not a usable PEM certificate and key: ${describeError(err)}`, EXIT.usage);
  }
  return tls;
}

/** Throws a usage CliError (`what`: the flag and file) unless `pem` holds at least one certificate and every one of them parses. */
function checkCertificates(what: string, pem: Buffer): void {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new CliError(`${what}: not a PEM certificate: no "BEGIN CERTIFICATE" block in it`, EXIT.usage);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new CliError(`${what}: not a PEM certificate: ${describeError(err)}`, EXIT.usage);
    }
  }
}

async function readBody(res: IncomingMessage, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
  } catch (err) {
    throw new CliError(`${what}: reading the answer: ${describeError(err)}`, EXIT.unreachable);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    if (code === 'ETIMEDOUT') return err.message.startsWith('timed out') ? err.message : 'ETIMEDOUT';
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
