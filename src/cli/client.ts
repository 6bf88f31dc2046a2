/**
 * The CLI's HTTP client for the admin API. Resolves the server from `--server` or
 * DROVER_SERVER and the token from `--token` or DROVER_TOKEN; classifies failures into the
 * CLI's exit codes.
 */
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
  server?: string;
  token?: string;
}

export class ApiClient {
  readonly base: string;
  private readonly token: string | undefined;

  constructor(options: ClientOptions) {
    const server = options.server ?? process.env.DROVER_SERVER ?? 'http://127.0.0.1:7400';
    try {
      this.base = new URL(server).toString().replace(/\/$/, '');
    } catch {
      throw new CliError(`--server: not a URL: ${server}`, EXIT.usage);
    }
    this.token = options.token ?? process.env.DROVER_TOKEN ?? undefined;
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
   * does not lead answers a change with 307 to the leader: followed here (at most 3 hops), with
   * the token, which fetch itself would drop on a redirect to another origin.
   */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    let url = `${this.base}${path}`;
    for (let hop = 0; ; hop++) {
      try {
        res = await fetch(url, {
          method,
          redirect: 'manual',
          headers: this.headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch (err) {
        throw new CliError(`cannot reach the Drover server at ${new URL(url).origin}: ${describeFetchError(err)}`, EXIT.unreachable);
      }
      const location = res.headers.get('location');
      if ((res.status !== 307 && res.status !== 308) || !location || hop >= 3) break;
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') break;
      await res.body?.cancel();
      url = next.toString();
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!res.ok) {
      const message = data && typeof data === 'object' && 'error' in data && typeof data.error === 'string' ? data.error : `HTTP ${res.status}`;
      throw new CliError(`${method} ${path}: ${message} (HTTP ${res.status})`, EXIT.error);
    }
    return data as T;
  }

  /** Opens the event stream; calls `onEvent` for each event until the stream ends or `signal` aborts. */
  async stream(path: string, onEvent: (type: string, data: unknown, id: string | null) => void, signal?: AbortSignal): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { headers: this.headers({ Accept: 'text/event-stream' }), ...(signal ? { signal } : {}) });
    } catch (err) {
      throw new CliError(`cannot reach the Drover server at ${this.base}: ${describeFetchError(err)}`, EXIT.unreachable);
    }
    if (!res.ok || !res.body) {
      const text = await res.text();
      throw new CliError(`GET ${path}: ${text || `HTTP ${res.status}`} (HTTP ${res.status})`, EXIT.error);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
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
  }
}

function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? err.message;
  }
  return String(err);
}
