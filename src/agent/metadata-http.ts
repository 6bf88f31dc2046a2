/**
 * One request to a cloud's instance metadata service, as every metadata client of the agent makes
 * it (imds.ts for EC2, hetzner-metadata.ts for Hetzner Cloud): on `fetch`, redirects refused,
 * aborted after a timeout on the injected clock, its answer read up to a size limit.
 *
 * Contracts:
 * - A request still unanswered `timeoutMs` after it started (on the clock) is aborted: a
 *   TimeoutError(`action`, timeoutMs).
 * - An answer longer than `maxBytes` (declared or read) is refused, reading stops there: an
 *   InvalidRequestError "`action`: the answer is longer than N bytes".
 * - Any other failure (no route, refused, reset, a redirect) is an UnavailableError
 *   "`action`: cause". Statuses are the caller's to judge: every answer is returned.
 */
import type { Clock } from '../clock/index.js';
import { InvalidRequestError, TimeoutError, UnavailableError, doing } from '../errors/index.js';
import { readLimited as readBody } from '../util/read-limited.js';

export interface MetadataRequest {
  method: 'GET' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  /** What the request is doing, for errors ("reading instance metadata /path"). */
  action: string;
  clock: Clock;
  timeoutMs: number;
  maxBytes: number;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

/** Makes the request; the status and the text of the answer (see the module's contracts). */
export async function metadataRequest(req: MetadataRequest): Promise<{ status: number; text: string }> {
  const { clock, timeoutMs, action } = req;
  const controller = new AbortController();
  let timedOut = false;
  const timer = clock.schedule(clock.nowMs() + timeoutMs, () => {
    timedOut = true;
    controller.abort();
  });
  try {
    const res = await (req.fetch ?? fetch)(req.url, { method: req.method, headers: req.headers ?? {}, signal: controller.signal, redirect: 'error' });
    const text = await readLimited(res, req.maxBytes, action);
    return { status: res.status, text };
  } catch (err) {
    if (timedOut) throw new TimeoutError(action, timeoutMs);
    if (err instanceof InvalidRequestError) throw err;
    throw new UnavailableError(doing(action, err), err);
  } finally {
    timer.cancel();
  }
}

/** The body of `res` as text; refuses (and stops reading) past `maxBytes`. */
export function readLimited(res: Response, maxBytes: number, action: string): Promise<string> {
  return readBody(res, maxBytes, () => new InvalidRequestError(`${action}: the answer is longer than ${maxBytes} bytes`));
}
