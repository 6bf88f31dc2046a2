/**
 * The agent's pid file: written at start (atomically: a temporary file renamed into place) so
 * that the local provider can find the agent, and removed at stop only while it still names
 * this process (a newer agent may have taken the path over). Failures to write are logged, not
 * thrown: the agent runs on without it.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';

export function writePidFile(path: string, logger: Logger): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, `${process.pid}\n`);
    renameSync(tmp, path);
  } catch (err) {
    logger.error({ path, err: errorMessage(err) }, 'writing the pid file failed');
  }
}

export function removePidFile(path: string): void {
  try {
    if (readFileSync(path, 'utf8').trim() === String(process.pid)) rmSync(path, { force: true });
  } catch {
    // absent: nothing to remove
  }
}
