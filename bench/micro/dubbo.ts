// Dubbo micro benchmarks: the frame decoder (ns per frame, 64 KiB chunks), the routing head decode (ns per
// request), and calls/s plus process CPU per call for a real consumer -> provider over loopback, direct and
// through the L4 Dubbo proxy (xRPC route, shared provider connections). Client, gateway and provider share
// one process, so CPU per call covers all three; the proxy's cost is the difference to the direct run.
// Bounded in calls and time. `npx node bench/micro/dubbo.ts [--smoke]`.
import { fileURLToPath } from 'node:url';
import hessian from 'hessian.js';
import { encodeRequest, encodeResponse, decodeRequestHead } from '../../protocols/dubbo/codec.ts';
import { FrameDecoder } from '../../protocols/dubbo/frame-decoder.ts';
import { setup } from '../../protocols/dubbo/index.ts';
import { XrpcRegistry } from '../../stream-routes/xrpc.ts';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createStreamListeners } from '../../protocols/stream/index.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import { connectDubboClient, startDubboProvider } from '../../test/helpers/dubbo-provider.ts';
import { item, registries } from '../../test/helpers/items.ts';
import { freePort } from '../../test/helpers/ports.ts';

const SVC = 'bench.Echo';

function median(xs: number[]): number {
  xs.sort((a, b) => a - b);
  return xs[xs.length >> 1]!;
}

function decoderNs(batches: number, frames: number): number {
  const one = encodeResponse(1n, { kind: 'value', value: { $class: 'java.util.HashMap', $: { body: 'x'.repeat(200), status: '200' } } });
  const stream = Buffer.concat(Array.from({ length: frames }, () => one));
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 65536) chunks.push(stream.subarray(i, i + 65536));
  const samples: number[] = [];
  let sink = 0;
  for (let b = 0; b < batches; b++) {
    const d = new FrameDecoder();
    const t = process.hrtime.bigint();
    for (const c of chunks) {
      d.push(c);
      for (let s = d.next(); s.kind === 'frame'; s = d.next()) sink += s.frame.bodyLength;
    }
    samples.push(Number(process.hrtime.bigint() - t) / frames);
  }
  if (sink === -1) console.log(sink);
  return median(samples);
}

/** The codec's head decode, or (baseline) the same four strings read with hessian.js. */
function headNs(batches: number, n: number, baseline: boolean): number {
  const body = encodeRequest(1n, { service: 'org.apache.dubbo.backend.DemoService', version: '1.0.0', method: 'hello', paramTypes: 'Ljava/lang/String;', args: ['zhangsan'] }).subarray(16);
  const viaHessian = (): boolean => {
    const d = new hessian.DecoderV2(body);
    return [d.read(), d.read(), d.read(), d.read()].length === 4;
  };
  const samples: number[] = [];
  let sink = 0;
  for (let b = 0; b < batches; b++) {
    const t = process.hrtime.bigint();
    if (baseline) for (let i = 0; i < n; i++) sink += viaHessian() ? 1 : 0;
    else for (let i = 0; i < n; i++) if (decodeRequestHead(body).ok) sink++;
    samples.push(Number(process.hrtime.bigint() - t) / n);
  }
  if (sink === -1) console.log(sink);
  return median(samples);
}

/** `calls` two-way calls with `concurrency` in flight on one client connection. */
async function load(port: number, calls: number, concurrency: number): Promise<{ callsPerSec: number; cpuUsPerCall: number }> {
  const c = await connectDubboClient(port);
  let next = 0n;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + 30_000;
  const worker = async (): Promise<void> => {
    while (next < BigInt(calls) && performance.now() < deadline) {
      const id = next++;
      const r = await c.call(id, SVC, 'echo', ['ping']);
      c.replies.delete(id);
      if (r.status !== 20) throw new Error(`call failed with status ${r.status}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  c.socket.destroy();
  const done = Number(next);
  return { callsPerSec: Math.round((done / ms) * 1000), cpuUsPerCall: Math.round(((cpu.user + cpu.system) / done) * 10) / 10 };
}

export async function run(opts: { smoke: boolean }): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  result.decode_frame_ns = Math.round(decoderNs(opts.smoke ? 3 : 9, opts.smoke ? 1_000 : 100_000));
  result.decode_request_head_ns = Math.round(headNs(opts.smoke ? 3 : 9, opts.smoke ? 1_000 : 100_000, false));
  result.decode_request_head_hessian_js_ns = Math.round(headNs(opts.smoke ? 3 : 9, opts.smoke ? 1_000 : 100_000, true));

  const provider = await startDubboProvider({ [SVC]: { echo: ([v]) => v } }, 'bench', 0, false);
  const { plugins, balancers } = registries();
  const builder = new StreamRuntimeBuilder({ plugins, balancers, logger: silentLogger });
  const port = await freePort();
  const snap = buildSnapshot(
    [item('stream_routes', 'dubbo', { server_port: port, protocol: { name: 'dubbo' }, upstream: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: provider.port, weight: 1 }] } })],
    1,
    { plugins },
  );
  const runtime = builder.build(snap, null);
  const xrpc = new XrpcRegistry();
  setup(xrpc);
  const listeners = createStreamListeners({ tcp: [{ addr: `127.0.0.1:${port}`, tls: false }], udp: [], getRuntime: () => runtime, logger: silentLogger, xrpc, timeouts: { drainMs: 100 } });
  await listeners.listen();
  try {
    const calls = opts.smoke ? 500 : 50_000;
    await load(provider.port, Math.min(calls, 2_000), 50); // warm-up
    const direct = await load(provider.port, calls, 50);
    await load(port, Math.min(calls, 2_000), 50);
    const proxied = await load(port, calls, 50);
    result.direct_calls_per_sec = direct.callsPerSec;
    result.direct_cpu_us_per_call = direct.cpuUsPerCall;
    result.proxied_calls_per_sec = proxied.callsPerSec;
    result.proxied_cpu_us_per_call = proxied.cpuUsPerCall;
  } finally {
    await listeners.close({ graceful: false });
    builder.close();
    await provider.kill();
  }
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const smoke = process.argv.includes('--smoke');
  console.log(JSON.stringify(await run({ smoke }), null, 2));
}
