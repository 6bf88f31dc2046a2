/**
 * The process logger: JSON lines (pino); pretty and coloured when writing to a terminal.
 * Level from DROVER_LOG_LEVEL (default info).
 */
import { pino, type Logger as PinoLogger } from 'pino';

export function createLogger(options: { name: string; level?: string; pretty?: boolean; destination?: number }): PinoLogger {
  const level = options.level ?? process.env.DROVER_LOG_LEVEL ?? 'info';
  const fd = options.destination ?? 1;
  const pretty = options.pretty ?? (fd === 2 ? process.stderr.isTTY : process.stdout.isTTY);
  if (pretty) {
    return pino({
      name: options.name,
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: fd } },
    });
  }
  return pino({ name: options.name, level }, pino.destination({ fd, sync: false }));
}
