import { join, resolve } from 'node:path';
import { parseDuration, readConfigFile } from '../../config/index.js';
import { writeNotice } from '../../providers/local/index.js';
import { CliError, EXIT } from '../client.js';

/** Writes a termination notice for a local instance; returns a line to print. */
export async function localNotice(instanceId: string, opts: { in: string; stateDir?: string; config?: string }): Promise<string> {
  const inMs = parseDuration(opts.in);
  if (inMs === null) throw new CliError(`--in: not a duration: ${opts.in}`, EXIT.usage);
  let stateDir = opts.stateDir;
  if (!stateDir && opts.config) {
    const { config } = readConfigFile(opts.config);
    stateDir = config.provider.stateDir ?? join(config.server.dataDir, 'local');
  }
  stateDir = resolve(stateDir ?? './.drover/local');
  const terminateAt = new Date(Date.now() + inMs);
  try {
    writeNotice(stateDir, instanceId, terminateAt);
  } catch (err) {
    throw new CliError(`writing a notice for ${instanceId} in ${stateDir}: ${err instanceof Error ? err.message : String(err)}`, EXIT.error);
  }
  return `termination notice for ${instanceId}: terminated at ${terminateAt.toISOString()}`;
}
