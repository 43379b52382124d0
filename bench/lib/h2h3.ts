// Load clients over TLS for the http3 scenario: h2load (Debian nghttp2-client) for HTTP/2 and ngtcp2's
// gtlsclient (Debian ngtcp2-client) for HTTP/3. Each client runs under `bash -c '...; times'` so the CPU the
// client itself spent (bash's children user+system time) comes back with its figures: on two cores the client
// competes with the gateway, and its CPU per request tells whether a run was client-bound.
import { execFile } from 'node:child_process';

export const H2LOAD_BIN = '/usr/bin/h2load';
export const GTLSCLIENT_BIN = '/usr/bin/gtlsclient';

export interface ClientRun {
  /** Responses received (h2load: every status code counted; gtlsclient: n per client that exited 0). */
  responses: number;
  /** Requests that failed: h2load failed/errored/timeout plus non-2xx; gtlsclient: n per failed client. */
  errors: number;
  seconds: number;
  /** User+system CPU of the client processes, microseconds. */
  clientCpuUs: number;
}

interface Timed {
  code: number | null;
  stdout: string;
  stderr: string;
  cpuUs: number;
}

/** Runs `cmd args` under bash and reads the children's CPU time from bash's `times` (on stderr, last line). */
function timed(cmd: string, args: string[], timeoutMs: number): Promise<Timed> {
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['-c', '"$@"; rc=$?; times >&2; exit $rc', 'bench-client', cmd, ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        // `times` prints two lines, the shell's own and its children's: "0m1.234s 0m0.567s".
        const lines = [...stderr.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)];
        const child = lines.at(-1);
        const cpuUs = child ? ((Number(child[1]) + Number(child[3])) * 60 + Number(child[2]) + Number(child[4])) * 1e6 : NaN;
        resolve({ code, stdout, stderr, cpuUs });
      },
    );
  });
}

/**
 * h2load over TLS for `durationSec` (h2load -D): `connections` connections, `streams` requests in flight on
 * each, one thread. The URL's host is the SNI; ALPN must pick h2 or the run fails.
 */
export async function runH2load(url: string, opts: { connections: number; streams: number; durationSec: number }): Promise<ClientRun> {
  const args = ['-t', '1', '-c', String(opts.connections), '-m', String(opts.streams), '-D', String(Math.max(1, Math.round(opts.durationSec))), url];
  const r = await timed(H2LOAD_BIN, args, (opts.durationSec + 30) * 1000);
  const out = r.stdout;
  const proto = /Application protocol: (\S+)/.exec(out);
  if (r.code !== 0 || proto?.[1] !== 'h2') throw new Error(`h2load ${args.join(' ')} (exit ${r.code}, protocol ${proto?.[1] ?? 'none'}):\n${(out + r.stderr).slice(-2000)}`);
  const fin = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(out);
  const req = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!fin || !req || !codes) throw new Error(`unexpected h2load output:\n${out.slice(-2000)}`);
  // With -D, "succeeded" counts the measurement window only, while the status codes count every response the
  // gateway served during the process's life; CPU per request divides by the latter, req/s is h2load's own.
  const responses = Number(codes[1]) + Number(codes[2]) + Number(codes[3]) + Number(codes[4]);
  return {
    responses,
    errors: Number(req[2]) + Number(req[3]) + Number(req[4]) + Number(codes[2]) + Number(codes[3]) + Number(codes[4]),
    seconds: Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1),
    clientCpuUs: r.cpuUs,
  };
}

export interface GtlsOptions {
  /** Remote host to connect to (an address; the name goes in --sni). */
  host: string;
  port: number;
  sni: string;
  path: string;
  /** Requests per connection (gtlsclient -n), opened as the server's MAX_STREAMS allows. */
  perConnection: number;
  timeoutMs: number;
}

function gtlsArgs(o: GtlsOptions, quiet: boolean): string[] {
  const args = ['--exit-on-all-streams-close', '--no-quic-dump', '--no-http-dump', `--sni=${o.sni}`, '--timeout=10s', '-n', String(o.perConnection)];
  if (quiet) args.push('-q');
  args.push(o.host, String(o.port), `https://${o.sni}:${o.port}${o.path}`);
  return args;
}

/**
 * One gtlsclient connection with `perConnection` requests, printing its debug log, which carries each
 * response's status line: returns the status codes seen. Used to check the route answers 200 over h3 (the
 * quiet runs of the load cannot show statuses).
 */
export async function gtlsStatuses(o: GtlsOptions): Promise<string[]> {
  const r = await timed(GTLSCLIENT_BIN, gtlsArgs(o, false), o.timeoutMs);
  return [...(r.stdout + r.stderr).matchAll(/\[:status: (\d+)\]/g)].map((m) => m[1]!);
}

/**
 * HTTP/3 load: `lanes` gtlsclient processes at a time, each running one connection of `perConnection`
 * requests, each lane starting a new one until `durationSec` has passed (so the last one may end after it).
 * gtlsclient runs with -q: its debug log would cost more CPU than the requests.
 */
export async function runGtlsLanes(o: GtlsOptions & { lanes: number; durationSec: number }): Promise<ClientRun> {
  const started = Date.now();
  const deadline = started + o.durationSec * 1000;
  const run: ClientRun = { responses: 0, errors: 0, seconds: 0, clientCpuUs: 0 };
  let firstFailure = '';
  const lane = async (): Promise<void> => {
    do {
      const r = await timed(GTLSCLIENT_BIN, gtlsArgs(o, true), o.timeoutMs);
      if (r.code === 0) run.responses += o.perConnection;
      else {
        run.errors += o.perConnection;
        firstFailure ||= `gtlsclient exit ${r.code}: ${(r.stdout + r.stderr).slice(-500)}`;
      }
      if (Number.isFinite(r.cpuUs)) run.clientCpuUs += r.cpuUs;
    } while (Date.now() < deadline);
  };
  await Promise.all(Array.from({ length: o.lanes }, lane));
  run.seconds = (Date.now() - started) / 1000;
  if (run.responses === 0) throw new Error(`no HTTP/3 client completed: ${firstFailure}`);
  return run;
}
