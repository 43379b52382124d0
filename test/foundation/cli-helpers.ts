// Spawning the real `switchyard` CLI (bin/switchyard.mjs on the pinned Node) on temp config files.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../helpers/ports.ts';
import { startPeer, waitFor, type Peer } from '../helpers/proc.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(REPO, 'bin/switchyard.mjs');
export const KEY = 'foundation-admin-key-0123456789';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (validate, version). */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: REPO, env: { ...process.env, ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export interface Ports {
  http: number;
  admin: number;
  status: number;
}

export async function ports(): Promise<Ports> {
  const seen = new Set<number>();
  const next = async () => {
    for (;;) {
      const p = await freePort();
      if (!seen.has(p)) {
        seen.add(p);
        return p;
      }
    }
  };
  return { http: await next(), admin: await next(), status: await next() };
}

/** A config.yaml (as an object) on loopback ports, quiet access log, one process unless overridden. */
export function baseConfig(p: Ports, provider: 'yaml' | 'etcd' = 'yaml'): Record<string, any> {
  return {
    apisix: {
      node_listen: [{ ip: '127.0.0.1', port: p.http }],
      status: { ip: '127.0.0.1', port: p.status },
      enable_control: false,
      // A fixed test keyring: start does not generate one, so tests that rewrite config.yaml from this object
      // change only the keys they mean to.
      data_encryption: { keyring: ['0123456789abcdef0123456789abcdef'] },
    },
    deployment: {
      role: 'traditional',
      role_traditional: { config_provider: provider },
      admin: {
        admin_key: [{ name: 'admin', key: KEY, role: 'admin' }],
        admin_listen: { ip: '127.0.0.1', port: p.admin },
        allow_admin: ['127.0.0.0/8'],
      },
    },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
    // The scrape endpoint has a fixed default port (9091); parallel gateways must not share it.
    plugin_attr: { prometheus: { enable_export_server: false } },
  };
}

/** startTestGateway() config merge: no Prometheus export server (fixed default port). */
export const NO_EXPORTER = { plugin_attr: { prometheus: { enable_export_server: false } } };

export async function writeConfig(dir: string, conf: Record<string, any>): Promise<string> {
  const file = path.join(dir, 'config.yaml');
  await writeFile(file, stringify(conf));
  return file;
}

export interface Gw {
  readonly peer: Peer;
  readonly exited: Promise<number | null>;
}

const started = new Set<Peer>();

/** SIGKILLs every CLI process this file started that is still running (afterAll; a timed-out test leaves none). */
export async function killAll(): Promise<void> {
  for (const p of started) await p.stop('SIGKILL');
  started.clear();
}

/** Starts `switchyard start -c file` and resolves once /status answers (the process is up and bound). */
export async function startCli(file: string, statusPort: number, env: NodeJS.ProcessEnv = {}): Promise<Gw> {
  const peer = startPeer(process.execPath, [BIN, 'start', '-c', file], {
    cwd: REPO,
    env: { ...process.env, SWITCHYARD_LOG_LEVEL: 'warn', ...env },
  });
  started.add(peer);
  const exited = new Promise<number | null>((resolve) => {
    if (peer.proc.exitCode !== null) resolve(peer.proc.exitCode);
    peer.proc.once('exit', (code) => resolve(code));
  });
  await waitFor(async () => {
    if (peer.proc.exitCode !== null) throw new Error(`switchyard exited ${peer.proc.exitCode}: ${peer.output().slice(-3000)}`);
    return (await get(`http://127.0.0.1:${statusPort}/status`)).status === 200;
  }, 30_000, 50);
  return { peer, exited };
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One request on a fresh connection (no keep-alive reuse between calls). */
export function get(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? 'GET', headers: { connection: 'close', ...opts.headers }, agent: false, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function admin(p: Ports, method: string, route: string, body?: unknown, key = KEY): Promise<{ status: number; body: any }> {
  const r = await get(`http://127.0.0.1:${p.admin}/apisix/admin${route}`, {
    method,
    headers: { 'x-api-key': key, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let parsed: unknown = r.body;
  try {
    parsed = JSON.parse(r.body);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body: parsed };
}

/** A route `/<name>/*` to the echo upstream at `addr`. */
export function route(name: string, addr: string): Record<string, unknown> {
  return { uri: `/${name}/*`, upstream: { type: 'roundrobin', nodes: { [addr]: 1 } } };
}

/** Waits until GET <url> answers `status` (default 200). */
export async function served(url: string, status = 200, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => (await get(url)).status === status, timeoutMs, 50);
}

export async function readText(file: string): Promise<string> {
  return await readFile(file, 'utf8');
}
