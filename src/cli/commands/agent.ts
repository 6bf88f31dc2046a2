import { runAgent } from '../../agent/agent.js';
import { readAgentConfig } from '../../agent/config.js';
import { createLogger } from '../../logging/index.js';
import { CliError, EXIT } from '../client.js';

/**
 * Runs an agent until SIGINT/SIGTERM (then it says goodbye and exits 0) or until it gives up
 * (credential refused: exit 2; instance deleted: exit 3; bootstrap token refused, or no
 * credential to be had: exit 4).
 */
export async function runAgentCommand(configPath: string): Promise<void> {
  let config;
  try {
    config = readAgentConfig(configPath);
  } catch (err) {
    throw new CliError(err instanceof Error ? err.message : String(err), EXIT.error);
  }
  const logger = createLogger({ name: 'drover-agent', pretty: false }).child({ instanceId: config.instanceId });
  const agent = runAgent(config, { logger });
  const onSignal = (signal: string): void => {
    logger.info({ signal }, 'signal received');
    agent.stop(signal).catch((err: unknown) => logger.error({ err }, 'stopping failed'));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  const exit = await agent.done;
  logger.info({ exitCode: exit.exitCode, reason: exit.reason }, 'agent exiting');
  logger.flush();
  if (exit.exitCode !== 0) process.exitCode = exit.exitCode;
}
