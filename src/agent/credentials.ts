/**
 * Per-instance agent credentials. A credential is an HMAC of the instance id under the server's
 * agent secret: the server can issue the same credential again when a create is retried (the
 * provider may already hold the first one), verify it without storing it, and nothing is
 * readable from the database that would let someone impersonate an agent. A credential dies
 * with its instance: the server refuses credentials of deleted instances.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { SettingError } from '../errors/index.js';

export class AgentCredentials {
  private readonly secret: Buffer;

  constructor(secret: string | Buffer) {
    this.secret = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
    if (this.secret.length < 16) throw new SettingError('reading the agent secret (DROVER_AGENT_SECRET, or agent-secret in server.dataDir): it must be at least 16 bytes');
  }

  /** Loads the secret from `path`, creating a random one (mode 0600) if the file is absent. */
  static fromFile(path: string): AgentCredentials {
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
    }
    chmodSync(path, 0o600);
    return new AgentCredentials(readFileSync(path, 'utf8').trim());
  }

  issue(instanceId: string): string {
    return createHmac('sha256', this.secret).update(`drover-agent:${instanceId}`).digest('base64url');
  }

  verify(instanceId: string, credential: string): boolean {
    const expected = Buffer.from(this.issue(instanceId));
    const given = Buffer.from(credential);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}
