/**
 * One-time agent bootstrap tokens, and the route agents exchange them at
 * (`POST /v1/agent/bootstrap`, protocol in src/agent/protocol.ts).
 *
 * A cloud whose user data anyone on the instance (or with the cloud's API) can read must not
 * carry the agent's long-lived credential. Such a provider (`agentBootstrap: 'token'`) gets a
 * bootstrap token in user data instead; the agent, on its first start, sends it with the cloud's
 * own id of its machine (EC2: the IMDS instance-id) and gets its credential back.
 *
 * Contracts:
 * - Issue. `issue(instanceId)` makes a random token (32 bytes, base64url) and records only its
 *   SHA-256 with the instance and an expiry of `server.agentBootstrapTokenTtl`. A create retried
 *   with the same idempotency key issues another token; the cloud keeps the first create's user
 *   data, so every unexpired token of an instance stays good until one of them is used.
 * - Redeem. One transaction checks and marks: the token must be known, issued for the instance
 *   named, unexpired, and no token of that instance used (else 401); the instance must not be
 *   deleted (403) and its recorded provider id must be the one presented (403; none recorded yet:
 *   503, retry). On success the token is marked used and the answer is the instance's credential
 *   (`AgentCredentials.issue`); after that, every token of the instance is refused.
 * - Audit. A success is audited (`agentBootstrap`, actor `agent:<id>`). A refusal of a real token
 *   of the instance (used, expired, wrong provider id, deleted instance) is audited the first time
 *   only (`agentBootstrapRefused`): someone replaying a token read from user data cannot flood the
 *   audit. Refusals of tokens that do not exist are logged, never audited (anyone can send them).
 * - Lookups are by the token's hash: a guess reveals nothing through timing, and the database
 *   holds nothing that can be presented.
 * - HA: the token table is this replica's own SQLite. The route is a `/v1` POST, so a follower
 *   sends it to the leader (307); only the replica that issued a token (the leader at the create)
 *   can redeem it. An agent whose token was issued by a replica that has since lost leadership
 *   is refused (401), never becomes healthy, and is replaced after `startupTimeout`.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { AgentCredentials } from '../agent/credentials.js';
import { AGENT_BOOTSTRAP_PATH, BOOTSTRAP_BODY_LIMIT, bootstrapAnswerSchema, bootstrapRequestSchema, type BootstrapRequest } from '../agent/protocol.js';
import type { Clock } from '../clock/index.js';
import { ForbiddenError, UnauthenticatedError, UnavailableError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { BootstrapTokenRecord, InstanceRecord, LocalDb } from '../store/index.js';
import { defineRoute } from './route-spec.js';

/** Bytes of randomness in a bootstrap token (256 bits). */
export const BOOTSTRAP_TOKEN_BYTES = 32;
/** What a 503 tells the agent to wait before it asks again (seconds). */
export const BOOTSTRAP_RETRY_AFTER_S = 2;

/** Why a bootstrap exchange ended as it did (logs, metrics and the audit). */
export type BootstrapResult = 'ok' | 'unknown' | 'expired' | 'used' | 'deleted' | 'providerMismatch' | 'providerUnknown';

export type RedeemOutcome =
  | { ok: true; credential: string; record: InstanceRecord }
  | { ok: false; result: Exclude<BootstrapResult, 'ok'>; status: 401 | 403 | 503; message: string };

export interface BootstrapTokensOptions {
  db: LocalDb;
  clock: Clock;
  credentials: AgentCredentials;
  /** How long a token issued now stays good (`server.agentBootstrapTokenTtl`; follows reloads). */
  ttlMs: () => number;
  /** The leadership epoch recorded in the audit. */
  epoch?: () => number | null;
}

export function hashBootstrapToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class BootstrapTokens {
  constructor(private readonly options: BootstrapTokensOptions) {}

  /** A new token for `instanceId`; only its hash is kept. */
  issue(instanceId: string): string {
    const { db, clock } = this.options;
    const token = randomBytes(BOOTSTRAP_TOKEN_BYTES).toString('base64url');
    const now = clock.nowMs();
    db.insertBootstrapToken({ tokenHash: hashBootstrapToken(token), instanceId, issuedAt: new Date(now), expiresAt: new Date(now + this.options.ttlMs()) });
    return token;
  }

  /** Checks a token and, when it is good, marks it used and gives the credential: all in one transaction. */
  redeem(req: BootstrapRequest): RedeemOutcome {
    const { db, clock } = this.options;
    return db.transaction((): RedeemOutcome => {
      const hash = hashBootstrapToken(req.token);
      const token = db.getBootstrapToken(hash);
      const now = clock.now();
      if (!token || token.instanceId !== req.instanceId) return { ok: false, result: 'unknown', status: 401, message: 'bootstrap token refused: it is not one issued for this instance' };
      const record = db.getInstance(req.instanceId);
      const refuse = (result: Exclude<BootstrapResult, 'ok'>, status: 401 | 403, message: string): RedeemOutcome => {
        this.recordRefusal(token, record, result, req.providerId);
        return { ok: false, result, status, message };
      };
      const usedAt = db.bootstrapTokenUsedAt(req.instanceId);
      if (usedAt) return refuse('used', 401, `bootstrap token refused: this instance exchanged a bootstrap token at ${usedAt.toISOString()} already; its tokens are good once`);
      if (token.expiresAt.getTime() <= now.getTime()) return refuse('expired', 401, `bootstrap token refused: it expired at ${token.expiresAt.toISOString()}`);
      if (!record) return { ok: false, result: 'unknown', status: 401, message: 'bootstrap token refused: it is not one issued for this instance' };
      if (record.status === 'deleted' || record.status === 'deleting') return refuse('deleted', 403, `bootstrap refused: instance ${record.id} is ${record.status}`);
      if (record.providerId === null) {
        return { ok: false, result: 'providerUnknown', status: 503, message: `bootstrap not possible yet: the provider has not confirmed instance ${record.id}; retry shortly` };
      }
      if (record.providerId !== req.providerId) {
        return refuse('providerMismatch', 403, `bootstrap refused: instance ${record.id} is not the machine ${req.providerId} (its provider id differs)`);
      }
      db.markBootstrapTokenUsed(hash, now);
      db.appendAudit({
        at: now,
        tenant: record.tenant,
        group: record.group,
        instanceId: record.id,
        action: 'agentBootstrap',
        reason: 'bootstrapToken',
        actor: `agent:${record.id}`,
        detail: `credential issued to provider id ${record.providerId}`,
        epoch: this.options.epoch?.() ?? null,
      });
      return { ok: true, credential: this.options.credentials.issue(record.id), record };
    });
  }

  /** Counts a refusal of a real token; the first one is audited. */
  private recordRefusal(token: BootstrapTokenRecord, record: InstanceRecord | null, result: BootstrapResult, providerId: string): void {
    const { db, clock } = this.options;
    const refusals = db.countBootstrapRefusal(token.tokenHash);
    if (refusals !== 1 || !record) return;
    db.appendAudit({
      at: clock.now(),
      tenant: record.tenant,
      group: record.group,
      instanceId: record.id,
      action: 'agentBootstrapRefused',
      reason: result,
      actor: `agent:${record.id}`,
      detail: `bootstrap token issued ${token.issuedAt.toISOString()} presented by provider id ${providerId}`,
      epoch: this.options.epoch?.() ?? null,
    });
  }
}

export interface BootstrapRouteDeps {
  tokens: BootstrapTokens;
  logger: Logger;
  /** Each exchange's result (metrics). */
  onResult?: (result: BootstrapResult) => void;
}

/**
 * `POST /v1/agent/bootstrap`: public (the token is the authentication), body at most
 * BOOTSTRAP_BODY_LIMIT bytes, validated by `bootstrapRequestSchema`.
 */
export function registerBootstrapRoute(app: FastifyInstance, deps: BootstrapRouteDeps): void {
  defineRoute(
    app,
    {
      method: 'POST',
      url: AGENT_BOOTSTRAP_PATH,
      access: 'public',
      tag: 'agents',
      summary: "Exchange an agent's one-time bootstrap token for its credential",
      description: 'Public: the one-time token is the proof. Body at most 4 KiB. The answer is `Cache-Control: no-store`.',
      body: bootstrapRequestSchema,
      bodyLimit: BOOTSTRAP_BODY_LIMIT,
      invalid: (_part, issues) => `invalid bootstrap request: ${issues} (expected {"instanceId", "token", "providerId"})`,
      responses: { 200: { description: "The instance's agent credential.", schema: bootstrapAnswerSchema } },
      errors: {
        401: 'The token is unknown, expired, used, or not issued for this instance.',
        403: 'The instance is deleted, or the provider id is not the one recorded for it.',
        503: 'The provider has not confirmed the instance yet: retry (`Retry-After`).',
      },
    },
    async ({ reply, body }) => {
      const outcome = deps.tokens.redeem(body);
      const { instanceId, providerId } = body;
      deps.onResult?.(outcome.ok ? 'ok' : outcome.result);
      if (outcome.ok) {
        deps.logger.info({ instanceId, providerId }, 'agent bootstrap token exchanged for its credential');
        void reply.header('cache-control', 'no-store');
        return { credential: outcome.credential };
      }
      deps.logger.warn({ instanceId, providerId, result: outcome.result }, 'agent bootstrap refused');
      switch (outcome.status) {
        case 401:
          throw new UnauthenticatedError(outcome.message);
        case 403:
          throw new ForbiddenError(outcome.message);
        case 503:
          void reply.header('retry-after', String(BOOTSTRAP_RETRY_AFTER_S));
          throw new UnavailableError(outcome.message);
      }
    },
  );
}
