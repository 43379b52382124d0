// gRPC unary load client of the grpc bench scenario: @grpc/grpc-js over h2c, `concurrency` calls in flight
// on one channel for `seconds`, then one JSON line {calls, errors, seconds, p50Ms, p99Ms}.
// `node bench/peers/grpc-load.ts <host:port> <concurrency> <seconds>`
import { echoClient, unary } from '../../test/helpers/grpc.ts';

const [target, concurrency, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
if (!target || !(concurrency > 0) || !(seconds > 0)) {
  console.error('usage: grpc-load.ts <host:port> <concurrency> <seconds>');
  process.exit(2);
}

const client = echoClient(target);
const latencies: number[] = [];
let errors = 0;
/** Calls past the latency sample. */
let calls = 0;
const start = performance.now();
const end = start + seconds * 1000;
// The sample of latencies is bounded; calls are counted in full.
const MAX_SAMPLES = 200_000;

async function worker(): Promise<void> {
  while (performance.now() < end) {
    const t0 = performance.now();
    try {
      await unary(client, { text: 'bench' });
      if (latencies.length < MAX_SAMPLES) latencies.push(performance.now() - t0);
      else calls++;
    } catch {
      errors++;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
const elapsed = (performance.now() - start) / 1000;
client.close();
latencies.sort((a, b) => a - b);
const pct = (p: number): number => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!);
console.log(JSON.stringify({ calls: calls + latencies.length, errors, seconds: elapsed, p50Ms: pct(50), p99Ms: pct(99) }));
