import { startDroverServer } from '../../app/drover-server.js';
import { createLogger } from '../../logging/index.js';
import { ConfigError } from '../../config/index.js';
import { CliError, EXIT } from '../client.js';

/** Runs the server until SIGINT/SIGTERM, then stops it cleanly. */
export async function runServer(configPath: string): Promise<void> {
  const logger = createLogger({ name: 'drover' });
  let server;
  try {
    server = await startDroverServer({ configPath, logger });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, EXIT.error);
    throw err;
  }
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'signal received');
      server
        .stop()
        .catch((err: unknown) => logger.error({ err }, 'stopping failed'))
        .finally(() => resolve());
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  logger.flush();
}
