// Result files: bench/results/<scenario>.json (machine-readable, with machine facts and steal) and
// <scenario>.md (the tables), plus summary.md for the whole run.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MachineFacts } from './procfs.ts';
import type { ScenarioResult, Table } from './types.ts';

export interface RunMeta {
  date: string;
  machine: MachineFacts;
  smoke: boolean;
  rounds: number;
  durationSec: number;
}

export interface ScenarioRecord {
  scenario: string;
  title: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  seconds: number;
  stealPercent: number;
  /** 1-minute load average when the scenario ended (other work on the machine shows here, not as steal). */
  loadAverage: number;
  result?: ScenarioResult;
}

export function tableMarkdown(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [`**${t.title}**`, '', `| ${t.columns.map(esc).join(' | ')} |`, `|${t.columns.map(() => '---').join('|')}|`];
  for (const r of t.rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

export function machineLine(meta: RunMeta): string {
  const m = meta.machine;
  return `${m.nproc} vCPU ${m.cpuModel}, ${m.memTotalMb} MB RAM, Linux ${m.kernel}, Node ${m.node}; ${meta.date}` +
    (meta.smoke ? ' (smoke run: short, not for comparison)' : `; ${meta.rounds} rounds x ${meta.durationSec} s per target`);
}

export function scenarioMarkdown(rec: ScenarioRecord, meta: RunMeta): string {
  const head = `### ${rec.scenario}: ${rec.title}\n\n${machineLine(meta)}; CPU steal during the scenario: ${rec.stealPercent} %; load average at its end: ${rec.loadAverage}\n`;
  if (rec.status !== 'ok' || !rec.result) return `${head}\n${rec.status.toUpperCase()}: ${rec.reason ?? ''}\n`;
  const tables = rec.result.tables.map(tableMarkdown).join('\n\n');
  const notes = rec.result.notes.map((n) => `- ${n}`).join('\n');
  return `${head}\n${tables}\n${notes ? `\n${notes}\n` : ''}`;
}

export async function writeScenario(dir: string, rec: ScenarioRecord, meta: RunMeta): Promise<void> {
  await mkdir(dir, { recursive: true });
  const json = {
    scenario: rec.scenario,
    title: rec.title,
    status: rec.status,
    reason: rec.reason,
    seconds: rec.seconds,
    steal_percent: rec.stealPercent,
    load_average: rec.loadAverage,
    meta,
    summary: rec.result?.summary ?? null,
    tables: rec.result?.tables ?? [],
    notes: rec.result?.notes ?? [],
  };
  await writeFile(path.join(dir, `${rec.scenario}.json`), JSON.stringify(json, null, 2) + '\n');
  await writeFile(path.join(dir, `${rec.scenario}.md`), scenarioMarkdown(rec, meta));
}

export function summaryMarkdown(records: readonly ScenarioRecord[], meta: RunMeta, stealPercent: number, seconds: number): string {
  const parts = [
    `## Latest run\n\nMachine: ${machineLine(meta)}.\nCPU steal over the whole run: ${stealPercent} % (from /proc/stat). Total time: ${Math.round(seconds)} s.\n`,
  ];
  for (const r of records) parts.push(scenarioMarkdown(r, meta));
  return parts.join('\n');
}

export async function writeSummary(dir: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'summary.md'), text);
}
