// Preloaded into a gateway process by the bench (`node --import <this file>`, only when SWY_MEM_PROBE names a
// directory; bench/lib/gc-probe.ts is the harness side): on SIGUSR2 it reads `<dir>/cmd` and answers in
// `<dir>/<seq>.json`.
//   stats            a memory-reducing full GC, then process.memoryUsage() and v8 heap statistics
//   snapshot <file>  the same GC, then a V8 heap snapshot written to <file>
// The GC is V8's last-resort flavour (what it runs under memory pressure): a plain full GC leaves the young
// generation at its grown size and keeps emptied pages, so a process that allocated ~100 MB at start-up still
// holds them while idle and a per-connection RSS delta measures when V8 happens to shrink, not the connections.
// Never loaded by the gateway otherwise.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

const dir = process.env.SWY_MEM_PROBE;
if (dir !== undefined && dir !== '') {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (o: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
  let seq = 0;
  process.on('SIGUSR2', () => {
    const [cmd, arg] = readFileSync(path.join(dir, 'cmd'), 'utf8').trim().split(/\s+/);
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    const out: Record<string, unknown> = { seq: ++seq };
    if (cmd === 'snapshot' && arg !== undefined) {
      v8.writeHeapSnapshot(arg);
      out.snapshot = arg;
    } else {
      out.memory = process.memoryUsage();
      out.heap = v8.getHeapStatistics();
      out.handles = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().length;
    }
    // A complete answer appears atomically.
    writeFileSync(path.join(dir, `${seq}.json.tmp`), JSON.stringify(out));
    renameSync(path.join(dir, `${seq}.json.tmp`), path.join(dir, `${seq}.json`));
  });
}
