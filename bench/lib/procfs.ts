// /proc readers: CPU time and RSS of a process tree (a proxy's master + workers, a Node parent + children),
// system CPU steal, and the machine facts printed with every result. Linux only.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every mainstream Linux build). */
const CLK_TCK = 100;
const PAGE_KB = 4;

interface ProcStat {
  ppid: number;
  /** utime + stime in clock ticks, all threads. */
  ticks: number;
  rssPages: number;
}

function readStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may contain spaces and parentheses: fields are counted after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15, rss = 24.
  return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), rssPages: Number(rest[21]) };
}

/** `pid` and all its descendants alive now. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p) || p <= 0) continue;
    const st = readStat(p);
    if (st === null) continue;
    const list = children.get(st.ppid);
    if (list) list.push(p);
    else children.set(st.ppid, [p]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0 && out.length < 10_000) {
    const p = queue.shift()!;
    out.push(p);
    for (const c of children.get(p) ?? []) queue.push(c);
  }
  return out;
}

export interface TreeSample {
  /** CPU time (user + system) of the tree, microseconds. */
  cpuUs: number;
  rssBytes: number;
}

/** CPU and RSS summed over `pids` (processes that are gone count as zero). */
export function sampleTree(pids: readonly number[]): TreeSample {
  let ticks = 0;
  let pages = 0;
  for (const pid of pids) {
    const st = readStat(pid);
    if (st === null) continue;
    ticks += st.ticks;
    pages += st.rssPages;
  }
  return { cpuUs: (ticks * 1_000_000) / CLK_TCK, rssBytes: pages * PAGE_KB * 1024 };
}

/** Open file descriptors of `pids` (processes that are gone count as zero). */
export function openFds(pids: readonly number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      n += readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      /* gone */
    }
  }
  return n;
}

export interface CpuTimes {
  total: number;
  steal: number;
  idle: number;
}

/** The aggregate `cpu` line of /proc/stat (ticks). */
export function systemCpu(): CpuTimes {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user/nice]
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { total, steal: v[7] ?? 0, idle: (v[3] ?? 0) + (v[4] ?? 0) };
}

/** Steal as a percentage of all CPU time between two readings. */
export function stealPercent(before: CpuTimes, after: CpuTimes): number {
  const dt = after.total - before.total;
  return dt > 0 ? Math.round(((after.steal - before.steal) * 1000) / dt) / 10 : 0;
}

export interface MachineFacts {
  nproc: number;
  cpuModel: string;
  memTotalMb: number;
  kernel: string;
  node: string;
}

export function machineFacts(): MachineFacts {
  let model = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch {
    /* keep os.cpus() */
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel: model,
    memTotalMb: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
    node: process.version,
  };
}
