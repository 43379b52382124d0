// Preloaded into a gateway process by bench/conn-memory.ts (`node --import <this file>`, only when
// SWY_MEM_PROBE names a directory): on SIGUSR2 it reads `<dir>/cmd` and answers in `<dir>/<seq>.json`.
//   stats            two full GCs, then process.memoryUsage() and v8 heap statistics
//   snapshot <file>  two full GCs, then a V8 heap snapshot written to <file>
// Lets the bench attribute a proxy's per-connection memory (heap vs external vs native) from inside the
// process it measures from outside; never loaded by the gateway otherwise.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

const dir = process.env.SWY_MEM_PROBE;
if (dir !== undefined && dir !== '') {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  let seq = 0;
  process.on('SIGUSR2', () => {
    const [cmd, arg] = readFileSync(path.join(dir, 'cmd'), 'utf8').trim().split(/\s+/);
    gc();
    gc();
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
