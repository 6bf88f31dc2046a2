/**
 * Termination notices of local instances. A notice is what a
 * cloud publishes in instance metadata before it reclaims a spot instance: here it is
 * `<instance dir>/notice.json` = `{ "terminateAt": ISO }`, written by `drover local notice`
 * (or a test). The instance's agent forwards it to the server; a started LocalProvider deletes the
 * instance once `terminateAt` has passed, as the cloud would.
 */
import { existsSync } from 'node:fs';
import { InstanceNotFoundError, InvalidRequestError } from '../../errors/index.js';
import { readJsonFile, writeFileAtomic } from './files.js';
import { localInstancePaths } from './instance-store.js';

/**
 * Publishes a termination notice for a local instance, as a cloud does in instance metadata:
 * `<dir>/notice.json` = `{ "terminateAt": ISO }`. The instance's agent forwards it to the server,
 * and a started LocalProvider deletes the instance once `terminateAt` has passed.
 * Throws InstanceNotFoundError when the instance has no folder.
 */
export function writeNotice(stateDir: string, instanceId: string, terminateAt: Date): void {
  if (Number.isNaN(terminateAt.getTime())) throw new InvalidRequestError('termination notice: invalid time');
  const paths = localInstancePaths(stateDir, instanceId);
  if (!existsSync(paths.meta)) throw new InstanceNotFoundError(instanceId);
  writeFileAtomic(paths.notice, `${JSON.stringify({ terminateAt: terminateAt.toISOString() })}\n`, 0o600);
}

/** The termination time in `<dir>/notice.json`, or null when there is no valid notice. */
export function readNotice(stateDir: string, instanceId: string): Date | null {
  const raw = readJsonFile(localInstancePaths(stateDir, instanceId).notice);
  if (!raw || typeof raw !== 'object') return null;
  const at = (raw as Record<string, unknown>).terminateAt;
  if (typeof at !== 'string') return null;
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? null : new Date(ms);
}
