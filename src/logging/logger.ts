/**
 * Logging: the interface every part logs through (pino's shape: structured fields first, a
 * constant message second), and the process logger (JSON lines; pretty and coloured when writing
 * to a terminal; level from DROVER_LOG_LEVEL, default info). A module of its own, beside clock/,
 * so that every folder may log without importing the reconciler.
 */
import { pino, type Logger as PinoLogger } from 'pino';

/** pino-compatible logger: structured fields first, a constant message second. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child?(bindings: Record<string, unknown>): Logger;
}


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
