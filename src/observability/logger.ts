// Process logger (pino). Secrets must never reach it: log ids and keys of objects, not their values.
// Times are ISO 8601 (UTC), the same format as the JSON access log. On a terminal (or with
// SWITCHYARD_LOG_FORMAT=pretty) lines are rendered for people: `time LEVEL [component] msg key=value`;
// otherwise (or with SWITCHYARD_LOG_FORMAT=json) they stay one JSON object per line for collectors.
import pino from 'pino';

export type Logger = pino.Logger;

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SHOWN_APART = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'component', 'module']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  return JSON.stringify(v) ?? String(v);
}

/** One JSON log line as a human-readable line (the JSON line itself when it does not parse). */
export function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = LEVEL_NAMES[o.level as number] ?? String(o.level);
  const where = o.component ?? o.module;
  let out = `${String(o.time ?? '')} ${level.padEnd(5)}${where === undefined ? '' : ` [${String(where)}]`} ${String(o.msg ?? '')}`;
  for (const k of Object.keys(o)) {
    if (SHOWN_APART.has(k)) continue;
    const v = o[k];
    if (k === 'err' && v !== null && typeof v === 'object') {
      const e = v as { message?: unknown; stack?: unknown };
      out += ` err=${value(e.message)}`;
      if (typeof e.stack === 'string') out += `\n    ${e.stack.split('\n').slice(1).join('\n    ').trim()}`;
      continue;
    }
    out += ` ${k}=${value(v)}`;
  }
  return `${out}\n`;
}

function pretty(): boolean {
  const f = process.env.SWITCHYARD_LOG_FORMAT;
  if (f === 'pretty') return true;
  if (f === 'json') return false;
  return process.stdout.isTTY === true;
}

const options: pino.LoggerOptions = {
  level: process.env.SWITCHYARD_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
};

let root: Logger = pretty() ? pino(options, { write: (line: string) => void process.stdout.write(prettyLine(line)) }) : pino(options);

export function setRootLogger(logger: Logger): void {
  root = logger;
}

export function getLogger(component: string): Logger {
  return root.child({ component });
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = pino({ level: 'silent' });
