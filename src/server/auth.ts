/**
 * Who may do what on the admin API.
 *
 * - Tokens. The API's bearer tokens come from the config (`server.tokens`: each named, with a
 *   role and optionally a list of tenants, given as its SHA-256, a file or an environment
 *   variable) and from the single legacy admin token (`server.token` / DROVER_TOKEN). Only their
 *   SHA-256 digests are kept. A presented token is hashed and compared with every digest in
 *   constant time (same length always, no early exit), so neither its content nor its length
 *   leaks through timing.
 * - Roles. `viewer` reads everything (and the event stream), `operator` also acts (scale, drain,
 *   acknowledge, protect), `admin` does everything. A token with `tenants` sees and touches only
 *   those tenants: the rest is absent from its answers and acting on it is a 404.
 * - Routes. Every route declares the role it needs in its fastify config (`access`); a route
 *   that declares nothing needs `admin`. Only the routes declared `public` are open.
 * - Targets. A request target is made canonical before routing (`canonicalTarget`): absolute
 *   form, percent-encoding, doubled slashes and dot segments all come down to one plain path,
 *   so the router and the access decision see the same thing.
 * - Hosts. The Host header must be a name this server is reached by (`HostPolicy`), so that a
 *   page on another site cannot drive a loopback server through DNS rebinding.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { ConfigError, type DroverConfig } from '../config/index.js';
import { MIN_TOKEN_LENGTH, type TokenRole } from '../config/schema.js';
import { errorMessage } from '../errors/index.js';

/** What a route needs: `public` (no token) or at least this role. */
export type Access = 'public' | TokenRole;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The role a route needs, or `public`. A route that says nothing needs `admin`. */
    access?: Access;
  }
  interface FastifyRequest {
    /** The caller, once authenticated (null: no valid token, on a public route). */
    principal: Principal | null;
  }
}

const RANK: Record<TokenRole, number> = { viewer: 1, operator: 2, admin: 3 };

/** The caller of a request, once its token is checked. */
export interface Principal {
  /** The token's name (`operator:<name>` in the audit); "anonymous" when the API is open. */
  readonly name: string;
  readonly role: TokenRole;
  /** The tenants it may see and touch; null = every tenant. */
  readonly tenants: ReadonlySet<string> | null;
  /**
   * The legacy single token or an open API: the audit names the person from the
   * `X-Drover-Actor` header, as it always did, instead of the token.
   */
  readonly legacy: boolean;
}

/** The caller when no token is configured at all (the API is open, on loopback by default). */
export const ANONYMOUS_ADMIN: Principal = { name: 'anonymous', role: 'admin', tenants: null, legacy: true };

/** Whether a principal has at least the role a route needs. */
export function hasRole(principal: Principal, need: TokenRole): boolean {
  return RANK[principal.role] >= RANK[need];
}

/** Whether a principal may see (and, with the role, touch) a tenant. */
export function seesTenant(principal: Principal, tenant: string): boolean {
  return principal.tenants === null || principal.tenants.has(tenant);
}

/** The tenant of a "tenant/group" key (the event stream's and notifyError's form). */
export function tenantOfGroupKey(groupKey: string): string {
  const slash = groupKey.indexOf('/');
  return slash < 0 ? groupKey : groupKey.slice(0, slash);
}

interface TokenEntry {
  readonly principal: Principal;
  readonly digest: Buffer;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Reads `Authorization: Bearer <token>`. The scheme is matched case-insensitively (RFC 9110
 * section 11.1); anything else is no token.
 */
export function bearerToken(header: string | string[] | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return null;
  const match = /^bearer[ \t]+([^\s].*)$/i.exec(value.trim());
  const token = match?.[1]?.trim();
  return token ? token : null;
}

export class TokenTable {
  private constructor(private readonly entries: readonly TokenEntry[]) {}

  /**
   * Builds the table from the config and the environment. Throws ConfigError naming the field
   * when a token file or variable is missing, unreadable or shorter than 16 characters, and when
   * two tokens share a name or a value.
   */
  static fromConfig(config: DroverConfig, env: NodeJS.ProcessEnv = process.env): TokenTable {
    const issues: Array<{ path: string; message: string }> = [];
    const entries: TokenEntry[] = [];
    const legacy = env.DROVER_TOKEN ?? config.server.token;
    if (legacy !== undefined && legacy !== '') {
      if (legacy.length < MIN_TOKEN_LENGTH) {
        issues.push({ path: env.DROVER_TOKEN ? 'DROVER_TOKEN' : 'server.token', message: `must be at least ${MIN_TOKEN_LENGTH} characters (a shorter token can be guessed)` });
      } else {
        entries.push({ principal: { name: 'admin', role: 'admin', tenants: null, legacy: true }, digest: sha256(legacy) });
      }
    }
    config.server.tokens.forEach((spec, index) => {
      const path = `server.tokens[${index}]`;
      let digest: Buffer | null = null;
      if (spec.sha256 !== undefined) {
        digest = Buffer.from(spec.sha256, 'hex');
      } else {
        let text: string | undefined;
        let where: string;
        if (spec.file !== undefined) {
          where = `${path}.file`;
          try {
            text = readFileSync(spec.file, 'utf8').trim();
            // A token file others can read is a token others have.
            if ((statSync(spec.file).mode & 0o077) !== 0) issues.push({ path: where, message: `${spec.file} is readable by other users; make it mode 0600` });
          } catch (err) {
            issues.push({ path: where, message: `reading ${spec.file}: ${errorMessage(err)}` });
          }
        } else {
          where = `${path}.env`;
          text = env[spec.env ?? '']?.trim();
          if (!text) issues.push({ path: where, message: `environment variable ${spec.env ?? ''} is not set` });
        }
        if (text !== undefined && text !== '') {
          if (text.length < MIN_TOKEN_LENGTH) issues.push({ path: where, message: `the token must be at least ${MIN_TOKEN_LENGTH} characters (a shorter token can be guessed)` });
          else digest = sha256(text);
        }
      }
      if (entries.some((e) => e.principal.name === spec.name)) issues.push({ path: `${path}.name`, message: `"${spec.name}" names another token too` });
      if (digest && entries.some((e) => e.digest.equals(digest))) issues.push({ path, message: 'has the same value as another token' });
      if (digest) entries.push({ principal: { name: spec.name, role: spec.role, tenants: spec.tenants ? new Set(spec.tenants) : null, legacy: false }, digest });
    });
    if (issues.length > 0) throw new ConfigError(issues, 'API tokens');
    return new TokenTable(entries);
  }

  /** True when at least one token is configured (else the API is open). */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  get size(): number {
    return this.entries.length;
  }

  /** The principal a presented token belongs to, or null (no token, or a wrong one). */
  authenticate(token: string | null): Principal | null {
    if (token === null) return null;
    const digest = sha256(token);
    let found: Principal | null = null;
    // Every digest is compared, whatever matched: the time taken does not say which, or whether.
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && found === null) found = entry.principal;
    }
    return found;
  }
}

/**
 * The canonical form of a request target: the path of an absolute-form target, each segment
 * percent-decoded once and re-encoded, doubled slashes collapsed, "." and ".." resolved (never
 * above the root); the query is kept as it is. Returns an error for what cannot be made plain:
 * an encoded "/", "\" or NUL inside a segment, malformed percent-encoding, or an absolute form
 * that is not http(s).
 */
export function canonicalTarget(raw: string): { url: string } | { error: string } {
  let target = raw;
  if (!target.startsWith('/')) {
    // RFC 9112 section 3.2.2: a server must accept the absolute form.
    let parsed: URL;
    try {
      parsed = new URL(target);
    } catch {
      return { error: 'the request target is not a path or an absolute http(s) URL' };
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return { error: 'the request target is not a path or an absolute http(s) URL' };
    target = `${parsed.pathname}${parsed.search}`;
  }
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  const out: string[] = [];
  const segments = rawPath.split('/');
  const trailingSlash = segments.length > 2 && segments[segments.length - 1] === '';
  for (const segment of segments) {
    if (segment === '') continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return { error: 'the request path has malformed percent-encoding' };
    }
    if (/[/\\\0]/.test(decoded)) return { error: 'the request path has an encoded "/", "\\" or NUL in a segment' };
    if (decoded === '.') continue;
    if (decoded === '..') {
      out.pop();
      continue;
    }
    out.push(encodeURIComponent(decoded));
  }
  const path = `/${out.join('/')}${trailingSlash && out.length > 0 ? '/' : ''}`;
  return { url: `${path}${query}` };
}

/** Host names that are always this server's own. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];

/** The host name of a Host header or URL authority, lowercased, without port or brackets. */
function hostName(authority: string): string | null {
  try {
    const name = new URL(`http://${authority}`).hostname.toLowerCase();
    return name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  } catch {
    return null;
  }
}

/**
 * The Host header must be a name this server is reached by: its listen address, its advertised
 * address, the HA replicas, loopback names and `server.allowedHosts`. An IP address literal is
 * always accepted: DNS rebinding needs a name that the attacker controls, and a page loaded from
 * an address is of that address's own origin. Ports are not compared (the listener decides those).
 */
export class HostPolicy {
  private readonly names: ReadonlySet<string>;

  constructor(config: DroverConfig) {
    const names = new Set<string>(LOOPBACK_NAMES);
    const add = (authority: string): void => {
      const name = hostName(authority);
      if (name) names.add(name);
    };
    add(config.server.listen);
    for (const url of [config.server.advertise, ...config.server.replicas]) {
      if (!url) continue;
      try {
        add(new URL(url).host);
      } catch {
        // The schema validated these as URLs.
      }
    }
    for (const entry of config.server.allowedHosts) add(entry);
    this.names = names;
  }

  /** Null when the Host header is acceptable, else why not. */
  check(hostHeader: string | undefined): string | null {
    if (!hostHeader) return 'the request has no Host header';
    const name = hostName(hostHeader);
    if (name === null) return 'the Host header is not a host name';
    if (this.names.has(name) || isIP(name) !== 0) return null;
    return `this server does not answer to the name ${name}; add it to server.allowedHosts if it is this server's`;
  }
}

/** Who asked, for the audit: the token's name, and the person the X-Drover-Actor header names. */
export function actorOf(req: FastifyRequest): string {
  const raw = req.headers['x-drover-actor'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  const person = value && /^[\w.@:-]{1,64}$/.test(value) ? value : null;
  const principal = req.principal;
  // The legacy single token (and an open API) cannot tell people apart: the header is all there is.
  if (!principal || principal.legacy) return person ? `operator:${person}` : 'operator:api';
  return person && person !== principal.name ? `operator:${principal.name}/${person}` : `operator:${principal.name}`;
}
