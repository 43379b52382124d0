// Admin API write throughput and memory of the process that owns the standalone file store (the cluster
// primary: store, Admin API, health; no data plane). A child process runs that part of the gateway on a temp
// dir; this process sends `--writes` Admin API PUTs, `--concurrency` at a time, and samples the child's RSS
// and (after a forced GC) its JS heap. Bounded by `--cap` seconds.
//
//   npx node bench/micro/admin-writes.ts [--writes 10000] [--concurrency 16] [--distinct 10000] [--cap 120]
//                                        [--role primary|all] [--prof DIR]
//
// `--distinct K` cycles the writes over K route ids (K = writes: every write creates a route; K small: the
// same routes rewritten). `--prof DIR` writes a CPU profile (.cpuprofile) and a heap snapshot of the child.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const ADMIN_KEY = 'bench-admin-key-0123456789abcdef';

interface ChildMem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

type ToParent = { type: 'ready'; adminPort: number } | { type: 'mem'; mem: ChildMem } | { type: 'snapshot'; file: string };
type ToChild = { type: 'mem'; gc: boolean } | { type: 'snapshot'; dir: string } | { type: 'stop' };

async function child(): Promise<void> {
  const [{ parseLocalConfig }, { startGateway }, { silentLogger }, v8, { freePort }] = await Promise.all([
    import('../../src/config/local.ts'),
    import('../../src/main.ts'),
    import('../../src/observability/logger.ts'),
    import('node:v8'),
    import('../../test/helpers/ports.ts'),
  ]);
  const dir = process.env.SWY_BENCH_DIR!;
  const role = (process.env.SWY_BENCH_ROLE ?? 'primary') as 'primary' | 'all';
  const [adminPort, statusPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const conf = {
    apisix: {
      node_listen: [{ ip: '127.0.0.1', port: httpPort }],
      status: { ip: '127.0.0.1', port: statusPort },
      enable_control: false,
    },
    deployment: {
      role: 'traditional',
      role_traditional: { config_provider: 'yaml' },
      admin: {
        admin_key: [{ name: 'admin', key: ADMIN_KEY, role: 'admin' }],
        admin_listen: { ip: '127.0.0.1', port: adminPort },
        allow_admin: ['127.0.0.0/8'],
      },
    },
    switchyard: { worker_processes: 1, access_log: { enable: false } },
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: await freePort() } } },
  };
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(configFile, stringify(conf));
  await writeFile(path.join(dir, 'apisix.yaml'), '#END\n');
  const parsed = parseLocalConfig(stringify(conf));
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  const gw = await startGateway({ config: parsed.config, configFile, role, logger: silentLogger });
  const send = (m: ToParent) => process.send!(m);
  process.on('message', (m: ToChild) => {
    if (m.type === 'mem') {
      if (m.gc) globalThis.gc?.();
      const u = process.memoryUsage();
      send({ type: 'mem', mem: { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external } });
    } else if (m.type === 'snapshot') {
      globalThis.gc?.();
      send({ type: 'snapshot', file: v8.writeHeapSnapshot(path.join(m.dir, `admin-writes-${process.pid}.heapsnapshot`)) });
    } else {
      void gw.close({ graceful: false }).then(() => process.exit(0));
    }
  });
  send({ type: 'ready', adminPort: gw.adminPort()! });
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}

function ask(cp: ChildProcess, msg: ToChild, want: ToParent['type']): Promise<ToParent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not answer ${msg.type}`)), 60_000);
    const on = (m: ToParent) => {
      if (m.type !== want) return;
      clearTimeout(timer);
      cp.off('message', on);
      resolve(m);
    };
    cp.on('message', on);
    cp.send(msg);
  });
}

const mb = (n: number) => (n / 1048576).toFixed(1);

async function parent(): Promise<void> {
  const writes = Number(arg('writes', '10000'));
  const concurrency = Number(arg('concurrency', '16'));
  const distinct = Number(arg('distinct', String(writes)));
  const capSec = Number(arg('cap', '120'));
  const role = arg('role', 'primary');
  const prof = arg('prof', '');
  const dir = await mkdtemp(path.join(tmpdir(), 'swy-admin-writes-'));
  const execArgv = ['--expose-gc', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [])];
  const cp = fork(fileURLToPath(import.meta.url), ['--child'], {
    env: { ...process.env, SWY_BENCH_DIR: dir, SWY_BENCH_ROLE: role },
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const ready = await new Promise<Extract<ToParent, { type: 'ready' }>>((resolve, reject) => {
      cp.once('exit', (code) => reject(new Error(`child exited (${code})`)));
      cp.on('message', (m: ToParent) => m.type === 'ready' && resolve(m));
    });
    const url = `http://127.0.0.1:${ready.adminPort}/apisix/admin/routes/`;
    const mem = async (gc: boolean) => ((await ask(cp, { type: 'mem', gc }, 'mem')) as Extract<ToParent, { type: 'mem' }>).mem;
    const before = await mem(true);
    let next = 0;
    let done = 0;
    let failed = 0;
    let peakRss = before.rss;
    const lat: number[] = [];
    const t0 = performance.now();
    const deadline = t0 + capSec * 1000;
    const sampler = setInterval(() => {
      void mem(false).then((m) => (peakRss = Math.max(peakRss, m.rss)), () => undefined);
    }, 500);
    const worker = async () => {
      while (next < writes && performance.now() < deadline) {
        const i = next++;
        const id = `r${i % distinct}`;
        const body = JSON.stringify({
          uri: `/bench/${id}/*`,
          methods: ['GET'],
          plugins: { 'proxy-rewrite': { uri: `/v/${i}` } },
          upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${1000 + (i % 50000)}`]: 1 } },
        });
        const s = performance.now();
        const res = await fetch(url + id, {
          method: 'PUT',
          headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        await res.arrayBuffer();
        lat.push(performance.now() - s);
        if (res.status >= 300) failed++;
        done++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    const sec = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const afterNoGc = await mem(false);
    const after = await mem(true);
    lat.sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!.toFixed(1);
    console.log(`admin writes: ${done}/${writes} PUTs (${distinct} distinct routes), concurrency ${concurrency}, role ${role}${done < writes ? ` (stopped at the ${capSec} s cap)` : ''}`);
    console.log(`  throughput ${(done / sec).toFixed(0)} writes/s over ${sec.toFixed(1)} s, failed ${failed}`);
    console.log(`  latency ms p50 ${pct(50)} p99 ${pct(99)} max ${pct(100)}`);
    console.log(`  child RSS MB: before ${mb(before.rss)}, peak ${mb(peakRss)}, after ${mb(afterNoGc.rss)}, after GC ${mb(after.rss)}`);
    console.log(`  child heapUsed MB (after GC): before ${mb(before.heapUsed)}, after ${mb(after.heapUsed)}; external ${mb(after.external)}`);
    if (prof) {
      const snap = (await ask(cp, { type: 'snapshot', dir: prof }, 'snapshot')) as Extract<ToParent, { type: 'snapshot' }>;
      console.log(`  heap snapshot: ${snap.file}; CPU profile in ${prof} when the child exits`);
    }
  } finally {
    const exited = new Promise((r) => cp.once('exit', r));
    if (cp.connected) cp.send({ type: 'stop' } satisfies ToChild);
    const t = setTimeout(() => cp.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--child')) await child();
else await parent();
