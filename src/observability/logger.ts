// Process logger (pino). Secrets must never reach it: log ids and keys of objects, not their values.
import pino from 'pino';

export type Logger = pino.Logger;

let root: Logger = pino({ level: process.env.SWITCHYARD_LOG_LEVEL ?? 'info', base: { pid: process.pid } });

export function setRootLogger(logger: Logger): void {
  root = logger;
}

export function getLogger(component: string): Logger {
  return root.child({ component });
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = pino({ level: 'silent' });
