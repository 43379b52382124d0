// Issue #15's proof: a dead log receiver with 1,000 requests makes no request slower, and the drop counter
// rises. http-logger posts to two dead receivers: one that accepts connections and never answers (the worst
// case: every batch holds a socket until `timeout`) and a port that refuses. Requests go out interleaved with
// a control route without a logger, 20 at a time; the logger routes' p99 is compared with the control's of
// the same run. Then the Prometheus exporter must show every entry either dropped or held by a batch the
// receiver got (an exact account), and the batch processor's bounds must have held: at most
// MAX_PENDING_BATCHES batches in flight (sockets open at the receiver) and at most batch_max_size entries
// buffered (the batch_process_entries gauge, sampled during the run).
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PENDING_BATCHES } from '../../src/observability/batch-processor.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { scrape, value } from './prom-text.ts';

const REQUESTS = 1000;
const CONCURRENCY = 20;
const WARMUP = 20;
const BATCH = 5;

/** Accepts, reads every request to its end, never answers; counts what it holds. */
class Blackhole {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  maxOpen = 0;
  /** Log entries in the request bodies received (http-logger: one object, or an array). */
  entries = 0;
  requests = 0;

  constructor() {
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      this.maxOpen = Math.max(this.maxOpen, this.sockets.size);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const len = Number(/content-length: *(\d+)/i.exec(buf.subarray(0, end).toString())?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          const body = JSON.parse(buf.subarray(end + 4, end + 4 + len).toString()) as unknown;
          this.entries += Array.isArray(body) ? body.length : 1;
          this.requests++;
          buf = buf.subarray(end + 4 + len);
        }
      });
    });
  }
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.ceil(s.length * 0.99) - 1]!;
}

describe('dead log receiver (issue #15)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let metricsUrl = '';
  const hole = new Blackhole();

  const metric = async (name: string, labels: Record<string, string>) => value(await scrape(metricsUrl), name, labels);
  const dropped = (name: string) => metric('apisix_batch_process_dropped_entries_total', { name });

  beforeAll(async () => {
    up = await startEcho('dead-up');
    await new Promise<void>((r) => hole.server.listen(0, '127.0.0.1', r));
    const refused = await freePort();
    gw = await startTestGateway();
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/ctl', { uri: '/ctl/*', upstream });
    await gw.put('/routes/hole', {
      uri: '/hole/*',
      upstream,
      plugins: {
        // timeout far beyond the run: no batch slot frees up while requests are measured
        'http-logger': { uri: `http://127.0.0.1:${(hole.server.address() as AddressInfo).port}/`, name: 'dead-hole', batch_max_size: BATCH, inactive_timeout: 1, timeout: 600 },
      },
    });
    await gw.put('/routes/refused', {
      uri: '/refused/*',
      upstream,
      plugins: {
        // one retry a second later: failed batches hold their slot, so the in-flight bound is reached here too
        'http-logger': { uri: `http://127.0.0.1:${refused}/`, name: 'dead-refused', batch_max_size: BATCH, inactive_timeout: 1, max_retry_count: 1, retry_delay: 1, timeout: 3 },
      },
    });
  }, 30_000);

  afterAll(async () => {
    // Unblocks the held batches so nothing waits for the 600 s timeout.
    for (const s of hole.sockets) s.destroy();
    hole.server.close();
    await gw?.close();
    await up?.close();
  });

  it('1,000 requests per dead receiver: none slower than the control beyond a generous margin; every entry dropped or held; bounded', async () => {
    const before = { hole: await dropped('dead-hole'), refused: await dropped('dead-refused') };
    const routes = ['ctl', 'hole', 'refused'] as const;
    const times: Record<(typeof routes)[number], number[]> = { ctl: [], hole: [], refused: [] };
    const statuses: number[] = [];
    const get = async (route: string, i: number, record: boolean) => {
      const t0 = performance.now();
      const r = await fetch(`${gw.url}/${route}/${i}`);
      await r.arrayBuffer();
      const dt = performance.now() - t0;
      statuses.push(r.status);
      if (record) times[route as keyof typeof times].push(dt);
    };
    for (let i = 0; i < WARMUP; i++) for (const route of routes) await get(route, i, false);

    let maxBuffered = 0;
    let next = 0;
    let running = true;
    const sampler = (async () => {
      // Bounded: the run ends in seconds; at most 600 samples, one per 100 ms.
      for (let k = 0; k < 600 && running; k++) {
        const s = await scrape(metricsUrl);
        maxBuffered = Math.max(maxBuffered, value(s, 'apisix_batch_process_entries', { name: 'dead-hole' }), value(s, 'apisix_batch_process_entries', { name: 'dead-refused' }));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const worker = async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        // Rotate the order so no route always goes first within an iteration.
        for (let k = 0; k < routes.length; k++) await get(routes[(i + k) % routes.length]!, i, true);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    running = false;
    await sampler;

    expect(statuses).toHaveLength((WARMUP + REQUESTS) * routes.length);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const ctl = p99(times.ctl);
    expect(times.hole).toHaveLength(REQUESTS);
    expect(p99(times.hole)).toBeLessThanOrEqual(3 * ctl + 20);
    expect(p99(times.refused)).toBeLessThanOrEqual(3 * ctl + 20);

    const total = WARMUP + REQUESTS;
    // Refused: every entry ends dropped (after its retry or at the in-flight bound), counted by the exporter.
    await waitFor(async () => (await dropped('dead-refused')) - before.refused === total, 20_000, 100);
    // Never answered: every entry is dropped except those in the batches the receiver holds.
    await waitFor(async () => (await dropped('dead-hole')) - before.hole + hole.entries === total, 20_000, 100);
    expect(hole.requests).toBeGreaterThan(0);
    expect(hole.requests).toBeLessThanOrEqual(MAX_PENDING_BATCHES);
    expect(hole.maxOpen).toBeLessThanOrEqual(MAX_PENDING_BATCHES);
    expect(hole.entries).toBeLessThanOrEqual(MAX_PENDING_BATCHES * BATCH);
    expect(maxBuffered).toBeLessThanOrEqual(BATCH);
  }, 120_000);
});
