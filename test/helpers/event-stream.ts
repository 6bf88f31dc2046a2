/**
 * A reader of the server's `/v1/events` stream (server-sent events) for tests: collects every
 * event and lets a test await the first one that matches.
 */

export interface ServerSentEvent {
  type: string;
  /** The `data:` line, parsed as JSON. */
  data: unknown;
}

export class EventStreamReader {
  readonly events: ServerSentEvent[] = [];
  private readonly controller = new AbortController();
  private readonly waiters = new Set<() => void>();
  private ended = false;
  private reading: Promise<void> = Promise.resolve();

  private constructor() {}

  /** Opens the stream (refusing anything but `text/event-stream`) and resolves once the server's `hello` event arrived: it is subscribed then. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<EventStreamReader> {
    const reader = new EventStreamReader();
    const res = await fetch(url, { headers, signal: reader.controller.signal });
    if (!res.ok || !res.body) throw new Error(`opening ${url}: HTTP ${res.status}`);
    const type = res.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream')) throw new Error(`opening ${url}: content type ${type}, not text/event-stream`);
    reader.reading = reader.read(res.body);
    await reader.next((e) => e.type === 'hello', 5_000);
    return reader;
  }

  /** The first event (already received or still to come) that matches; rejects after `timeoutMs`. */
  next(matches: (event: ServerSentEvent) => boolean, timeoutMs = 15_000): Promise<ServerSentEvent> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.events.find(matches);
        if (found) resolve(found);
        else if (this.ended) reject(new Error(`event stream ended without the awaited event; saw ${this.types()}`));
        else return false;
        return true;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no awaited event within ${timeoutMs} ms; saw ${this.types()}`));
      }, timeoutMs);
      const waiter = (): void => {
        if (check()) {
          clearTimeout(timer);
          this.waiters.delete(waiter);
        }
      };
      this.waiters.add(waiter);
    });
  }

  /** Events of one type, their data. */
  ofType<T>(type: string): T[] {
    return this.events.filter((e) => e.type === type).map((e) => e.data as T);
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.reading;
  }

  private types(): string {
    return this.events.map((e) => e.type).join(', ') || 'nothing';
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        for (const w of [...this.waiters]) w();
      }
    } catch {
      // aborted by close()
    } finally {
      this.ended = true;
      for (const w of [...this.waiters]) w();
    }
  }

  private parse(block: string): void {
    let type = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) type = line.slice('event: '.length);
      else if (line.startsWith('data: ')) data.push(line.slice('data: '.length));
    }
    if (data.length > 0) this.events.push({ type, data: JSON.parse(data.join('\n')) as unknown });
  }
}
