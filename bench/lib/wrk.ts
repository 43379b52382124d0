// wrk runner and parser: `wrk --latency` output -> requests, req/s, latency percentiles, errors, transfer rate.
// Lua scripts (path cycling, paced requests) are written into the run's temp dir.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

export const WRK_BIN = '/usr/bin/wrk';

export interface WrkOptions {
  url: string;
  connections: number;
  durationSec: number;
  threads?: number;
  /** Path of a Lua script (see cyclePathsScript / pacedScript). */
  script?: string;
  headers?: string[];
  /** Per-request timeout (wrk --timeout), seconds. */
  timeoutSec?: number;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  latencyMs: { p50: number; p75: number; p90: number; p99: number };
  errors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  transferBytesPerSec: number;
}

const TIME_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const SIZE_UNIT: Record<string, number> = { B: 1, KB: 1024, MB: 1048576, GB: 1073741824 };

/** Parses wrk 4.x output printed with --latency. Throws when the summary lines are missing. */
export function parseWrk(out: string): WrkResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!total || !rps) throw new Error(`unexpected wrk output:\n${out.slice(0, 2000)}`);
  const pct = (p: number): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? Number(m[1]) * TIME_UNIT[m[2]!]! : NaN;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const transfer = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: (Number(total[2]) * TIME_UNIT[total[3]!]!) / 1000,
    rps: Number(rps[1]),
    latencyMs: { p50: pct(50), p75: pct(75), p90: pct(90), p99: pct(99) },
    errors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
    },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    transferBytesPerSec: transfer ? Number(transfer[1]) * SIZE_UNIT[transfer[2]!]! : 0,
  };
}

export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${opts.threads ?? 1}`,
    `-c${opts.connections}`,
    `-d${Math.max(1, Math.round(opts.durationSec))}s`,
    `--timeout`,
    `${opts.timeoutSec ?? 5}s`,
    '--latency',
  ];
  for (const h of opts.headers ?? []) args.push('-H', h);
  if (opts.script) args.push('-s', opts.script);
  args.push(opts.url);
  return new Promise((resolve, reject) => {
    execFile(
      WRK_BIN,
      args,
      { timeout: (opts.durationSec + 20) * 1000, maxBuffer: 1 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`wrk ${args.join(' ')}: ${stderr || err.message}`));
        try {
          resolve(parseWrk(stdout));
        } catch (e) {
          reject(e as Error);
        }
      },
    );
  });
}

/** A script sending GET `prefix + k` for k spread over 0..count-1 (a stride walk, every path once per cycle). */
export async function cyclePathsScript(dir: string, prefix: string, count: number): Promise<string> {
  const file = path.join(dir, `cycle-${count}.lua`);
  // 7919 is prime and does not divide count, so the stride visits every k before repeating.
  const stride = count % 7919 === 0 ? 7907 : 7919;
  await writeFile(
    file,
    `local n = ${count}\nlocal k = 0\n` +
      `request = function()\n  k = (k + ${stride}) % n\n  return wrk.format("GET", "${prefix}" .. k)\nend\n`,
  );
  return file;
}

/**
 * A paced script: each connection waits `delayMs` after every response before sending the next request, so
 * the offered load is about connections * 1000 / (delayMs + latency) req/s, far below saturation.
 */
export async function pacedScript(dir: string, delayMs: number): Promise<string> {
  const file = path.join(dir, `paced-${delayMs}.lua`);
  await writeFile(file, `delay = function()\n  return ${delayMs}\nend\n`);
  return file;
}
