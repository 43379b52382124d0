// Reload without restart (APISIX users run `apisix reload`): SIGHUP to the primary or the single process, the
// Admin API's PUT /apisix/admin/plugins/reload and the Control API's PUT /v1/plugins/reload all re-read
// config.yaml and validate it; an invalid file changes nothing and logs its key-path errors. What can change live
// is applied: the `plugins` / `stream_plugins` lists (as APISIX's plugin reload does: the registry's enabled set,
// then a full runtime rebuild, so routes drop plugins no longer enabled)
// and plugin_attr of plugins that read it when their instances are built. Every other changed key (listeners,
// etcd, workers, admin...) is logged as needing a restart and left as it was. Cluster workers get the
// validated live part from the primary over IPC, so every process applies the same values.
// The pid file (<config dir>/logs/switchyard.pid, APISIX keeps logs/nginx.pid under its prefix) tells
// `switchyard reload -c <config>` whom to signal.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadLocalConfig, type LocalConfig } from './config/local.ts';
import type { Logger } from './observability/logger.ts';
import { enablePlugins } from './plugin/builtin/index.ts';
import type { PluginRegistry } from './plugin/registry.ts';

/** plugin_attr entries read once at start (the Prometheus export server and metric options). */
const ATTR_NEEDS_RESTART = new Set(['prometheus']);

/** Sections compared key by key, so the log names e.g. `apisix.node_listen` rather than `apisix`. */
const SECTIONED = new Set(['apisix', 'deployment', 'switchyard', 'nginx_config', 'plugin_attr']);

export function pidFilePath(configFile: string): string {
  return path.join(path.dirname(path.resolve(configFile)), 'logs', 'switchyard.pid');
}

/** Records this process's pid; the file is removed at exit if it still names this process. */
export function writePidFile(configFile: string, log: Logger): void {
  const file = pidFilePath(configFile);
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${process.pid}\n`);
  } catch (err) {
    log.warn({ err, file }, 'cannot write the pid file; `switchyard reload` will not find this process');
    return;
  }
  process.once('exit', () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
    } catch {
      // Already gone or replaced by another instance: nothing of ours to remove.
    }
  });
}

/** The pid recorded for `configFile`, or an error text. */
export function readPidFile(configFile: string): { pid: number } | { error: string } {
  const file = pidFilePath(configFile);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { error: `cannot read ${file}: ${(err as Error).message} (is switchyard running with this config?)` };
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? { pid } : { error: `${file} does not hold a pid` };
}

/** JSON with sorted keys: key order in the file is no change. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stable(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'undefined';
}

/** Key paths whose values differ between two loaded configs (defaults applied to both). */
export function diffConfig(prev: LocalConfig, next: LocalConfig): string[] {
  const out: string[] = [];
  const a = prev as Record<string, unknown>;
  const b = next as Record<string, unknown>;
  for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = a[key];
    const y = b[key];
    if (stable(x) === stable(y)) continue;
    const xo = x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : null;
    const yo = y !== null && typeof y === 'object' && !Array.isArray(y) ? (y as Record<string, unknown>) : null;
    if (!SECTIONED.has(key) || !xo || !yo) {
      out.push(key);
      continue;
    }
    for (const sub of [...new Set([...Object.keys(xo), ...Object.keys(yo)])].sort()) {
      if (stable(xo[sub]) !== stable(yo[sub])) out.push(`${key}.${sub}`);
    }
  }
  return out;
}

/** The live-changeable part of a config, as sent to workers. */
export interface LiveConfig {
  plugins?: string[];
  stream_plugins?: string[];
  plugin_attr: Record<string, Record<string, unknown>>;
}

export interface ReloadPlan {
  /** Changed keys applied now. */
  live: string[];
  /** Changed keys that take effect only after a restart. */
  restart: string[];
  /** The values to run with: the new live keys, the current values of restart-only plugin_attr entries. */
  next: LiveConfig;
}

function isLive(key: string): boolean {
  if (key === 'plugins' || key === 'stream_plugins') return true;
  return key.startsWith('plugin_attr.') && !ATTR_NEEDS_RESTART.has(key.slice('plugin_attr.'.length));
}

export function planReload(current: LocalConfig, loaded: LocalConfig): ReloadPlan {
  const changed = diffConfig(current, loaded);
  const attr: Record<string, Record<string, unknown>> = {};
  for (const [name, v] of Object.entries(loaded.plugin_attr)) if (!ATTR_NEEDS_RESTART.has(name)) attr[name] = v;
  for (const [name, v] of Object.entries(current.plugin_attr)) if (ATTR_NEEDS_RESTART.has(name)) attr[name] = v;
  return {
    live: changed.filter(isLive),
    restart: changed.filter((k) => !isLive(k)),
    next: { plugins: loaded.plugins, stream_plugins: loaded.stream_plugins, plugin_attr: attr },
  };
}

/**
 * Applies the live part to this process. `conf` is changed in place: the runtime builder holds
 * `conf.plugin_attr` and the next reload compares against `conf`, so both see the new values.
 * Returns the listed plugins that are not available (skipped, as at start).
 */
export function applyLive(conf: LocalConfig, next: LiveConfig, target: { plugins: PluginRegistry; refresh(): void }): string[] {
  if (next.plugins === undefined) delete conf.plugins;
  else conf.plugins = next.plugins;
  if (next.stream_plugins === undefined) delete conf.stream_plugins;
  else conf.stream_plugins = next.stream_plugins;
  for (const name of Object.keys(conf.plugin_attr)) if (!(name in next.plugin_attr)) delete conf.plugin_attr[name];
  Object.assign(conf.plugin_attr, next.plugin_attr);
  const missing = enablePlugins(target.plugins, conf.plugins, conf.stream_plugins);
  target.refresh();
  return missing;
}

/** What one reload did: the changed keys applied and left for a restart, or why nothing changed. */
export type ReloadOutcome =
  | { ok: true; applied: string[]; needRestart: string[] }
  | { ok: false; error: string };

interface Waiter {
  promise: Promise<ReloadOutcome>;
  resolve(outcome: ReloadOutcome): void;
}

function waiter(): Waiter {
  let resolve!: (outcome: ReloadOutcome) => void;
  const promise = new Promise<ReloadOutcome>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * The one home of reloads (SIGHUP, the Admin API's PUT /plugins/reload, the Control API's PUT
 * /v1/plugins/reload): one reload at a time; requests during a reload share one more, which reads the file
 * after they were made. Requests before attach() (still starting) run once attached. request() resolves with
 * the outcome of the reload that served it and never rejects.
 */
export class Reloader {
  private readonly configFile: string;
  private readonly conf: LocalConfig;
  private readonly log: Logger;
  private apply: ((next: LiveConfig) => string[]) | null = null;
  private running = false;
  /** The requests waiting for the next reload. */
  private queued: Waiter | null = null;

  /** `conf`: the configuration the process runs with (compared against, changed in place by apply). */
  constructor(configFile: string, conf: LocalConfig, log: Logger) {
    this.configFile = configFile;
    this.conf = conf;
    this.log = log;
  }

  attach(apply: (next: LiveConfig) => string[]): void {
    this.apply = apply;
    this.next();
  }

  request(): Promise<ReloadOutcome> {
    this.queued ??= waiter();
    const { promise } = this.queued;
    this.next();
    return promise;
  }

  private next(): void {
    const w = this.queued;
    if (this.running || this.apply === null || w === null) return;
    this.queued = null;
    this.running = true;
    this.reload().then(
      (outcome) => this.done(w, outcome),
      (err: unknown) => {
        this.log.error({ err }, 'reload failed');
        this.done(w, { ok: false, error: (err as Error).message });
      },
    );
  }

  private done(w: Waiter, outcome: ReloadOutcome): void {
    this.running = false;
    w.resolve(outcome);
    this.next();
  }

  private async reload(): Promise<ReloadOutcome> {
    const loaded = await loadLocalConfig(this.configFile);
    if (!loaded.ok) {
      this.log.error({ file: this.configFile, errors: loaded.errors }, 'reload: invalid configuration, nothing changed');
      return { ok: false, error: `invalid configuration in ${this.configFile}: ${loaded.errors.join('; ')}` };
    }
    for (const w of loaded.warnings) this.log.warn({ file: this.configFile }, w);
    const plan = planReload(this.conf, loaded.config);
    if (plan.live.length > 0) {
      const missing = this.apply!(plan.next);
      if (missing.length > 0) this.log.warn({ plugins: missing }, 'plugins listed in config.yaml are not available; skipped');
    }
    if (plan.restart.length > 0) {
      this.log.warn({ keys: plan.restart }, 'reload: these changed keys need a restart to take effect; kept as they are');
    }
    this.log.info({ file: this.configFile, applied: plan.live, needRestart: plan.restart }, 'reload: done');
    return { ok: true, applied: plan.live, needRestart: plan.restart };
  }
}
