/**
 * Serves the web dashboard (the files `npm run build` writes to dist/web) at `/`.
 * No token is needed for these files: they hold no data; the page asks for the token and uses
 * it on the `/v1` API. Hashed assets (`/assets/*`) are cached for a year; `index.html` is
 * revalidated every time so a new build is picked up.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { defineRoute } from './route-spec.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** The page only talks to this server; nothing is loaded from anywhere else. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * The built dashboard: dist/web next to dist/server when running the build, or the repository's
 * dist/web when running from source (tests, tsx).
 */
export function defaultWebDir(): string | null {
  const candidates = [fileURLToPath(new URL('../web/', import.meta.url)), fileURLToPath(new URL('../../dist/web/', import.meta.url))];
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? null;
}

function extension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? '' : name.slice(dot);
}

export function registerStatic(app: FastifyInstance, webDir: string | null = defaultWebDir()): void {
  const send = async (reply: FastifyReply, file: string, cache: string): Promise<FastifyReply> => {
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      return reply.code(404).send({ error: 'not found' });
    }
    return reply
      .header('Cache-Control', cache)
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'no-referrer')
      .type(TYPES[extension(file)] ?? 'application/octet-stream')
      .send(body);
  };

  const index = async (_req: unknown, reply: FastifyReply): Promise<FastifyReply> => {
    if (!webDir) {
      return reply.code(404).type('text/plain; charset=utf-8').send('The dashboard is not built: run "npm run build".\n');
    }
    reply.header('Content-Security-Policy', CSP).header('X-Frame-Options', 'DENY');
    return send(reply, join(webDir, 'index.html'), 'no-cache');
  };
  const page = {
    access: 'public' as const,
    tag: 'dashboard',
    responses: {
      200: { description: "The dashboard's page (with its Content-Security-Policy).", contentType: 'text/html' },
      404: { description: 'The dashboard is not built (`npm run build`).', contentType: 'text/plain' },
    },
  };
  defineRoute(app, { ...page, method: 'GET', url: '/', summary: 'The web dashboard' }, async ({ req, reply }) => index(req, reply));
  defineRoute(app, { ...page, method: 'GET', url: '/index.html', summary: 'The web dashboard (by its file name)' }, async ({ req, reply }) => index(req, reply));

  defineRoute(
    app,
    {
      method: 'GET',
      url: '/assets/:name',
      access: 'public',
      tag: 'dashboard',
      summary: "One of the dashboard's built files (hashed names, cached for a year)",
      params: z.object({ name: z.string() }),
      responses: { 200: { description: 'The file (JavaScript, CSS, fonts, images).', contentType: '*/*' } },
      errors: { 404: 'No such file.' },
    },
    async ({ reply, params }) => {
      const { name } = params;
      if (!webDir || !SAFE_NAME.test(name)) return reply.code(404).send({ error: 'not found' });
      return send(reply, join(webDir, 'assets', name), 'public, max-age=31536000, immutable');
    },
  );

  // Un-hashed files at the top of the build (favicon); revalidated.
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/:file',
      access: 'public',
      tag: 'dashboard',
      summary: "A file at the top of the dashboard's build (favicon)",
      params: z.object({ file: z.string() }),
      responses: { 200: { description: 'The file.', contentType: '*/*' } },
      errors: { 404: 'No such file.' },
    },
    async ({ reply, params }) => {
      const { file } = params;
      if (!webDir || !SAFE_NAME.test(file) || !(extension(file) in TYPES) || file === 'index.html') return reply.code(404).send({ error: `no route GET /${file}` });
      return send(reply, join(webDir, file), 'no-cache');
    },
  );
}
