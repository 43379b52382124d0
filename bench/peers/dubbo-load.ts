// Dubbo 2 load client of the dubbo bench scenario: `connections` TCP connections, each keeping `inflight`
// two-way hessian2 calls of BenchService.echo("bench") in flight for `seconds` (a reply starts the next
// call on its connection), then one JSON line {calls, errors, seconds, p50Ms, p99Ms}. The request frame is
// encoded once; only the request id changes. Errors: replies with a status other than OK (20).
// `node bench/peers/dubbo-load.ts <host:port> <connections> <inflight> <seconds>`
import net from 'node:net';
import hessian from 'hessian.js';

const SERVICE = 'org.apache.dubbo.bench.BenchService';
const [target, connections, inflight, seconds] = [process.argv[2] ?? '', Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const colon = target.lastIndexOf(':');
if (colon < 0 || !(connections > 0) || !(inflight > 0) || !(seconds > 0)) {
  console.error('usage: dubbo-load.ts <host:port> <connections> <inflight> <seconds>');
  process.exit(2);
}

const enc = new hessian.EncoderV2();
for (const v of ['2.0.2', SERVICE, '', 'echo', 'Ljava/lang/String;', 'bench']) enc.write(v);
enc.write({ $class: 'java.util.HashMap', $: { path: SERVICE, interface: SERVICE } });
const body = enc.get();
const frame = Buffer.alloc(16 + body.length);
frame.writeUInt16BE(0xdabb, 0);
frame[2] = 0xc2; // request, two-way, hessian2
frame.writeUInt32BE(body.length, 12);
body.copy(frame, 16);

const MAX_SAMPLES = 200_000;
const latencies: number[] = [];
let calls = 0;
let errors = 0;
let nextId = 1;
const start = performance.now();
const end = start + seconds * 1000;

function connection(): Promise<void> {
  return new Promise((resolve, reject) => {
    const sentAt = new Map<number, number>();
    const s = net.connect({ host: target.slice(0, colon), port: Number(target.slice(colon + 1)), noDelay: true });
    let pending: Buffer = Buffer.alloc(0);
    const send = (): void => {
      const id = nextId++;
      const f = Buffer.from(frame);
      f.writeUInt32BE(id, 8);
      sentAt.set(id, performance.now());
      s.write(f);
    };
    s.once('connect', () => {
      for (let i = 0; i < inflight; i++) send();
    });
    s.on('error', reject);
    s.on('close', () => resolve());
    s.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let off = 0;
      while (pending.length - off >= 16) {
        const len = pending.readUInt32BE(off + 12);
        if (pending.length - off < 16 + len) break;
        const id = pending.readUInt32BE(off + 8);
        if (pending[off + 3] !== 20) errors++;
        const t0 = sentAt.get(id);
        sentAt.delete(id);
        const now = performance.now();
        if (t0 !== undefined) {
          calls++;
          if (latencies.length < MAX_SAMPLES) latencies.push(now - t0);
        }
        off += 16 + len;
        if (now < end) send();
      }
      pending = pending.subarray(off);
      if (performance.now() >= end && sentAt.size === 0) s.end();
    });
  });
}

await Promise.all(Array.from({ length: connections }, connection));
const elapsed = (performance.now() - start) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number): number => (latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!);
console.log(JSON.stringify({ calls, errors, seconds: elapsed, p50Ms: pct(50), p99Ms: pct(99) }));
