// The harness side of bench/lib/mem-probe.ts: the environment that preloads it into a gateway, and a client
// that asks the gateway process for a memory-reducing GC (and its memory figures) between RSS readings.
import { mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/proc.ts';

const PROBE_MODULE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'mem-probe.ts');

/** Environment for a gateway that should load the probe; `dir` is created and holds its command and answers. */
export function probeEnv(dir: string): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  return { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${PROBE_MODULE}`.trim(), SWY_MEM_PROBE: dir };
}

export class Probe {
  private seq = 0;
  readonly dir: string;
  readonly pid: number;

  /** `dir` as given to probeEnv for the process `pid` (one Probe per process: answers are numbered). */
  constructor(dir: string, pid: number) {
    this.dir = dir;
    this.pid = pid;
  }

  async ask(cmd: string): Promise<Record<string, unknown>> {
    await writeFile(path.join(this.dir, 'cmd'), cmd);
    const n = ++this.seq;
    process.kill(this.pid, 'SIGUSR2');
    const file = path.join(this.dir, `${n}.json`);
    const text = await waitFor(async () => {
      try {
        return await readFile(file, 'utf8');
      } catch {
        return null;
      }
    }, 120_000, 50);
    return JSON.parse(text!) as Record<string, unknown>;
  }

  /** A memory-reducing full GC in the process; its memory figures right after. */
  async collect(): Promise<NodeJS.MemoryUsage> {
    return (await this.ask('stats')).memory as NodeJS.MemoryUsage;
  }
}
