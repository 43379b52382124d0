// 256 MB up and down through a gateway running as its own process (bin/switchyard.mjs, standalone
// apisix.yaml): bodies must stream, so the gateway's resident memory stays bounded during the transfers. A gateway
// that held a whole body would grow by at least SIZE; one that streams still shows garbage in its peak RSS, since
// every socket read has its own 64 KB buffer and V8 frees them when its external-memory heuristic fires (peaks of
// 60-95 MB measured for 100 MB uploads, on both engines and before and after 2026-12-07's changes), so the bound
// sits between the two, well clear of each.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { Agent, request } from 'undici';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

const SIZE = 256 * 1024 * 1024;
const MAX_GROWTH = 160 * 1024 * 1024;

let child: ChildProcess;
let up: EchoServer;
let base = '';
let cleanup: () => Promise<void> = async () => undefined;
let output = '';
const agent = new Agent({ keepAliveTimeout: 10_000 });

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return Number(m![1]) * 1024;
}

/** Samples the gateway's RSS every 25 ms while `work` runs; returns the peak. */
async function peakDuring(pid: number, work: Promise<unknown>): Promise<number> {
  let peak = await rss(pid);
  let done = false;
  const sampler = (async () => {
    for (let i = 0; i < 4000 && !done; i++) {
      peak = Math.max(peak, await rss(pid));
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  try {
    await work;
  } finally {
    done = true;
    await sampler;
  }
  return peak;
}

beforeAll(async () => {
  up = await startEcho('big');
  const t = await tempDir('swy-stream-');
  cleanup = t.cleanup;
  const [port, statusPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const conf = {
    apisix: { node_listen: [{ ip: '127.0.0.1', port }], status: { ip: '127.0.0.1', port: statusPort }, enable_control: false },
    deployment: { role: 'data_plane', role_data_plane: { config_provider: 'yaml' } },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: metricsPort } } },
  };
  const routes = {
    routes: [
      { id: 'upload', uri: '/upload', upstream: { nodes: { [up.addr]: 1 } } },
      { id: 'download', uri: '/bytes/*', upstream: { nodes: { [up.addr]: 1 } } },
    ],
  };
  const configFile = path.join(t.dir, 'config.yaml');
  await writeFile(configFile, stringify(conf));
  await writeFile(path.join(t.dir, 'apisix.yaml'), stringify(routes) + '#END\n');
  child = spawn(process.execPath, ['bin/switchyard.mjs', 'start', '-c', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr!.on('data', (d) => (output = (output + d).slice(-20_000)));
  base = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    const r = await request(`${base}/bytes/10`, { dispatcher: agent });
    await r.body.text();
    return r.statusCode === 200;
  }, 20_000, 100).catch((err: Error) => {
    throw new Error(`${err.message}\n${output}`);
  });
  // Warm up: JIT, pools and buffers reach their steady size before the baseline is taken.
  for (let i = 0; i < 20; i++) {
    const r = await request(`${base}/bytes/1048576`, { dispatcher: agent });
    await r.body.dump({ limit: Infinity });
  }
});

afterAll(async () => {
  await agent.close();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  await up?.close();
  await cleanup();
});

describe('streaming bodies through a gateway process', () => {
  test('a 256 MB upload streams to the upstream with bounded gateway memory', async () => {
    const pid = child.pid!;
    const baseline = await rss(pid);
    async function* body(): AsyncGenerator<Buffer> {
      const chunk = Buffer.alloc(64 * 1024, 97);
      for (let sent = 0; sent < SIZE; sent += chunk.length) yield chunk;
    }
    const work = (async () => {
      const r = await request(`${base}/upload`, {
        method: 'POST',
        body: Readable.from(body()),
        headers: { 'content-type': 'application/octet-stream' },
        dispatcher: agent,
        headersTimeout: 25_000,
        bodyTimeout: 25_000,
      });
      return { status: r.statusCode, json: (await r.body.json()) as { bodyLength: number } };
    })();
    const peak = await peakDuring(pid, work);
    const res = await work;
    expect(res.status).toBe(200);
    expect(res.json.bodyLength).toBe(SIZE);
    expect(peak - baseline, `peak ${peak} baseline ${baseline}`).toBeLessThan(MAX_GROWTH);
  });

  test('a 256 MB download read slowly streams with bounded gateway memory', async () => {
    const pid = child.pid!;
    const baseline = await rss(pid);
    const work = (async () => {
      const r = await request(`${base}/bytes/${SIZE}`, { dispatcher: agent, headersTimeout: 25_000, bodyTimeout: 25_000 });
      let got = 0;
      let pauses = 0;
      for await (const chunk of r.body) {
        got += (chunk as Buffer).length;
        // A slower reader than the upstream: the gateway must apply backpressure, not buffer.
        if (got >> 22 > pauses) {
          pauses++;
          await new Promise((res) => setTimeout(res, 20));
        }
      }
      return { status: r.statusCode, got };
    })();
    const peak = await peakDuring(pid, work);
    const res = await work;
    expect(res.status).toBe(200);
    expect(res.got).toBe(SIZE);
    expect(peak - baseline, `peak ${peak} baseline ${baseline}`).toBeLessThan(MAX_GROWTH);
  });
});
