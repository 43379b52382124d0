// HTTP/3 next to HTTP/2 over TLS on the same gateway process and route (issue 11): the HTTPS listener has
// `enable_http3: true`, so TCP (h2 by ALPN) and UDP (QUIC) share one port number and one certificate. h2load
// drives h2, ngtcp2's gtlsclient drives h3 (several processes in parallel, many requests per connection; no
// other packaged client speaks h3 here). The two alternate per round; the figures are requests/s, the
// gateway's CPU per request (/proc) and the client's own CPU per request, which shows when a run is bound by
// the client rather than by the gateway.
import path from 'node:path';
import { freeTcpUdpPort } from '../../test/helpers/ports.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { gtlsStatuses, runGtlsLanes, runH2load, type ClientRun, type GtlsOptions } from '../lib/h2h3.ts';
import { startUpstream } from '../lib/http-setup.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import { track } from '../lib/service.ts';
import { fmt, fmtInt, mb, median, round } from '../lib/stats.ts';
import { makeCert, waitHandshake } from '../lib/tls.ts';
import type { Scenario, ScenarioContext } from '../lib/types.ts';

const SNI = 'localhost';
/** Parallel connections for both protocols. */
const CONNECTIONS = 4;
/** h2 streams in flight per connection: the gateway's QUIC MAX_STREAMS (128) bounds h3 the same way. */
const H2_STREAMS = 128;
/** One QUIC handshake costs the gateway about 10-25 ms of CPU here: 250+ requests per connection amortise it. */
const H3_MIN_PER_CONNECTION = 250;
const HANDSHAKES = 8;
const H3_MAX_PER_CONNECTION = 5000;

interface Sample extends ClientRun {
  gatewayCpuUs: number;
  rssBytes: number;
}

const rps = (s: Sample) => s.responses / s.seconds;
const gwCpu = (s: Sample) => s.gatewayCpuUs / Math.max(1, s.responses);
const clientCpu = (s: Sample) => s.clientCpuUs / Math.max(1, s.responses);

async function sampled(pid: number, load: () => Promise<ClientRun>): Promise<Sample> {
  const tree = processTree(pid);
  const before = sampleTree(tree);
  const run = await load();
  const after = sampleTree(tree);
  return { ...run, gatewayCpuUs: after.cpuUs - before.cpuUs, rssBytes: after.rssBytes };
}

/** Polls one h3 request until it answers 200 (the QUIC listener picks the certificate up on the next accept). */
async function waitH3(o: GtlsOptions): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last: string[] = [];
  while (Date.now() < deadline) {
    last = await gtlsStatuses({ ...o, perConnection: 1 });
    if (last[0] === '200') return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no HTTP/3 200 from the gateway (statuses seen: ${last.join(',') || 'none'})`);
}

function log(ctx: ScenarioContext, label: string, s: Sample): void {
  ctx.log(`  ${label.padEnd(22)} ${fmtInt(rps(s)).padStart(7)} req/s  gateway cpu ${fmt(gwCpu(s), 1)} µs/req  client cpu ${fmt(clientCpu(s), 1)} µs/req  errors ${s.errors}`);
}

export const http3: Scenario = {
  name: 'http3',
  title: 'HTTP/3 (gtlsclient) vs HTTP/2 over TLS (h2load), same gateway, same route, 1 KB responses',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const tls = makeCert(ctx.tmp, SNI);
    const up = await startUpstream(ctx);
    const port = await freeTcpUdpPort();
    const gw = await track(ctx.services, startGateway({
      dir: path.join(ctx.tmp, 'gateway'),
      httpsPort: port,
      http3: true,
      fallbackSni: SNI,
      standalone: { routes: [route('1', '/*', up.port)] },
    }));
    // Through the Admin API, as https-1route does: the TLS runtime picks up ssl objects on config changes.
    const put = await gw.admin('PUT', '/ssls/1', { cert: tls.cert, key: tls.key, snis: [SNI] });
    if (put.status >= 300) throw new Error(`PUT /ssls/1: ${put.status} ${JSON.stringify(put.body)}`);
    await waitHandshake(port, SNI);
    const h3base: GtlsOptions = { host: '127.0.0.1', port, sni: SNI, path: '/', perConnection: 1, timeoutMs: (ctx.durationSec * 4 + 30) * 1000 };
    await waitH3(h3base);

    const h2 = () => runH2load(`https://${SNI}:${port}/`, { connections: CONNECTIONS, streams: H2_STREAMS, durationSec: ctx.durationSec });
    // Requests per h3 connection: about one connection per lane per run, so the QUIC handshake is amortised
    // as h2load's are; calibrated on the warm-up.
    let perConnection = ctx.smoke ? 20 : H3_MIN_PER_CONNECTION;
    if (ctx.warmupSec > 0) {
      await runH2load(`https://${SNI}:${port}/`, { connections: CONNECTIONS, streams: H2_STREAMS, durationSec: ctx.warmupSec });
      const w = await runGtlsLanes({ ...h3base, perConnection, lanes: CONNECTIONS, durationSec: ctx.warmupSec });
      const perLane = w.responses / w.seconds / CONNECTIONS;
      perConnection = Math.min(H3_MAX_PER_CONNECTION, Math.max(H3_MIN_PER_CONNECTION, Math.round(perLane * ctx.durationSec)));
      ctx.log(`  h3 warm-up: ${fmtInt(perLane * CONNECTIONS)} req/s; ${perConnection} requests per connection`);
    }
    const h3 = () => runGtlsLanes({ ...h3base, perConnection, lanes: CONNECTIONS, durationSec: ctx.durationSec });

    const runs = { h2: [] as Sample[], h3: [] as Sample[] };
    for (let r = 0; r < ctx.rounds; r++) {
      const a = await sampled(gw.pid, h2);
      runs.h2.push(a);
      log(ctx, `round ${r + 1}/${ctx.rounds} h2 (TLS)`, a);
      const b = await sampled(gw.pid, h3);
      runs.h3.push(b);
      log(ctx, `round ${r + 1}/${ctx.rounds} h3 (QUIC)`, b);
    }
    // New connections: one request each, so the gateway's CPU per connection is mostly the QUIC handshake.
    const hs = await sampled(gw.pid, () => runGtlsLanes({ ...h3base, perConnection: 1, lanes: CONNECTIONS, durationSec: 0 }));
    for (let i = 1; i < HANDSHAKES / CONNECTIONS; i++) {
      const more = await sampled(gw.pid, () => runGtlsLanes({ ...h3base, perConnection: 1, lanes: CONNECTIONS, durationSec: 0 }));
      hs.responses += more.responses;
      hs.errors += more.errors;
      hs.gatewayCpuUs += more.gatewayCpuUs;
      hs.clientCpuUs += more.clientCpuUs;
    }
    ctx.log(`  h3 new connections: gateway cpu ${fmt(gwCpu(hs) / 1000, 1)} ms per connection (${hs.responses} connections)`);
    // The quiet load runs cannot show statuses: one connection with the debug log checks they are 200s.
    const check = await gtlsStatuses({ ...h3base, perConnection: 50 });
    const ok = check.filter((s) => s === '200').length;
    if (ok !== 50) throw new Error(`h3 status check: ${ok}/50 answers were 200 (${[...new Set(check)].join(',')})`);

    const perRound = (f: (s: Sample) => number) => runs.h3.map((s, i) => f(s) / f(runs.h2[i]!));
    const row = (name: string, client: string, rs: Sample[], isH2: boolean) => {
      const r = rs.map(rps);
      return [
        name,
        client,
        `${fmtInt(median(r))} (${fmtInt(Math.min(...r))}-${fmtInt(Math.max(...r))})`,
        isH2 ? '1.00' : fmt(median(perRound(rps))),
        fmt(median(rs.map(gwCpu)), 1),
        isH2 ? '1.00' : fmt(median(perRound(gwCpu))),
        fmt(median(rs.map(clientCpu)), 1),
        mb(Math.max(...rs.map((s) => s.rssBytes))),
        String(rs.reduce((a, s) => a + s.errors, 0)),
      ];
    };
    const fig = (rs: Sample[]) => ({
      rps_median: round(median(rs.map(rps)), 0),
      rps_rounds: rs.map((s) => round(rps(s), 0)),
      gateway_cpu_us_per_req: round(median(rs.map(gwCpu)), 1),
      gateway_cpu_us_per_req_rounds: rs.map((s) => round(gwCpu(s), 1)),
      client_cpu_us_per_req: round(median(rs.map(clientCpu)), 1),
      responses: rs.reduce((a, s) => a + s.responses, 0),
      errors: rs.reduce((a, s) => a + s.errors, 0),
    });
    const h3Gw = median(runs.h3.map(gwCpu));
    const h3Client = median(runs.h3.map(clientCpu));
    const clientBound = h3Client > h3Gw;
    return {
      summary: {
        h2: fig(runs.h2),
        h3: { ...fig(runs.h3), requests_per_connection: perConnection },
        h3_over_h2_rps: round(median(perRound(rps)), 3),
        h3_over_h2_gateway_cpu: round(median(perRound(gwCpu)), 3),
        h3_client_bound: clientBound,
        h3_status_check: `${ok}/50 200`,
        h3_new_connection_gateway_cpu_ms: round(gwCpu(hs) / 1000, 2),
        h3_new_connection_client_cpu_ms: round(clientCpu(hs) / 1000, 2),
      },
      tables: [{
        title: `h3 vs h2 over TLS, same gateway and route (${CONNECTIONS} connections each)`,
        columns: ['protocol', 'client', 'req/s median (min-max)', '× h2', 'gateway CPU µs/req', 'CPU × h2', 'client CPU µs/req', 'gateway RSS MB', 'errors'],
        rows: [
          row('h2 (TLS 1.3)', `h2load -c${CONNECTIONS} -m${H2_STREAMS}`, runs.h2, true),
          row('h3 (QUIC)', `gtlsclient x${CONNECTIONS}, -n ${perConnection}`, runs.h3, false),
        ],
      }, {
        title: 'h3 new connections (one request per QUIC connection)',
        columns: ['connections', 'gateway CPU ms per connection', 'client CPU ms per connection', 'errors'],
        rows: [[String(hs.responses + hs.errors), fmt(gwCpu(hs) / 1000, 2), fmt(clientCpu(hs) / 1000, 2), String(hs.errors)]],
      }],
      notes: [
        'One gateway process (worker_processes 1, access log off), one route `/*` to nginx serving 1 KB; the HTTPS listener has enable_http3, so h2 (TCP, ALPN) and h3 (UDP) share the port and the ECDSA P-256 certificate of an ssl object.',
        `h2: h2load, one thread, ${CONNECTIONS} TLS connections with up to ${H2_STREAMS} streams in flight each, for the run's duration. h3: ${CONNECTIONS} gtlsclient processes at a time, each one QUIC connection of ${perConnection} requests (opened as MAX_STREAMS 128 allows); a process that ends before the run's time is replaced, and the run lasts until the last one ends.`,
        `gateway CPU µs/req: user+system CPU of the gateway process tree (/proc/<pid>/stat) over the run divided by the responses; for h3 it includes one QUIC handshake (with stateless retry) per connection of ${perConnection} requests, whose cost the second table shows. client CPU µs/req: the load client's own CPU (bash \`times\`), per response.`,
        clientBound
          ? `h3 throughput here is client-bound: gtlsclient spends ${fmt(h3Client, 1)} µs of CPU per request against the gateway's ${fmt(h3Gw, 1)}, on the same two cores, so h3 req/s understates the gateway; gateway CPU per request is the figure to compare.`
          : `gtlsclient spends ${fmt(h3Client, 1)} µs of CPU per request against the gateway's ${fmt(h3Gw, 1)}; both share two cores, so compare gateway CPU per request rather than req/s.`,
        `gtlsclient runs with -q (its debug log would cost more CPU than the requests), so the load runs count a client's requests when it exits 0; a final connection with the log on checked ${ok}/50 answers were 200.`,
      ],
    };
  },
};
