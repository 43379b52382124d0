// `npm run bench [-- <scenario>...] [--smoke] [--out DIR] [--rounds N] [--duration S] [--readme] [--list]`
// Runs the scenarios of bench/scenarios/ (all by default) one after another, each bounded in time, on
// loopback only; writes <out>/<scenario>.json + .md and <out>/summary.md, prints the tables, and reports the
// CPU steal seen (/proc/stat) per scenario and for the run. Exit 0 when every scenario ran or was skipped.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineFacts, stealPercent, systemCpu } from './lib/procfs.ts';
import { scenarioMarkdown, summaryMarkdown, writeScenario, writeSummary, type RunMeta, type ScenarioRecord } from './lib/report.ts';
import { stopAll, type Service } from './lib/service.ts';
import { ensureTools } from './lib/tools.ts';
import type { Scenario, ScenarioContext, ScenarioResult } from './lib/types.ts';
import { SCENARIOS } from './scenarios/index.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SMOKE_BUDGET_SEC = 60;
const README_START = '<!-- bench:latest:start -->';
const README_END = '<!-- bench:latest:end -->';

const USAGE = `usage: npm run bench -- [scenario...] [options]
scenarios: ${SCENARIOS.map((s) => s.name).join(', ')} (default: all)
options:
  --smoke         about a second per measurement, one round (checks the harness, numbers not comparable)
  --out DIR       results directory (default bench/results)
  --rounds N      measured rounds per target (default 3, minimum 3 unless --smoke)
  --duration S    seconds per measured load run (default 3)
  --readme        replace the "Latest run" section of bench/README.md with this run's tables
  --list          list the scenarios and exit`;

function log(msg: string): void {
  process.stdout.write(`${msg}\n`);
}

function withDeadline<T>(p: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} exceeded its ${seconds} s budget`)), seconds * 1000);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** Services of the scenario running now, stopped on SIGINT/SIGTERM (nginx workers would outlive a SIGKILLed master). */
let running: Service[] = [];

function stopOnSignals(): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`== ${signal}: stopping ${running.length} service(s)`);
    const forced = setTimeout(() => process.exit(1), 15_000);
    void stopAll(running).finally(() => {
      clearTimeout(forced);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

async function runOne(s: Scenario, base: Omit<ScenarioContext, 'tmp' | 'services'>): Promise<ScenarioRecord> {
  const started = Date.now();
  const cpu0 = systemCpu();
  const record = (status: ScenarioRecord['status'], extra: Partial<ScenarioRecord>): ScenarioRecord => ({
    scenario: s.name,
    title: s.title,
    status,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    stealPercent: stealPercent(cpu0, systemCpu()),
    loadAverage: Math.round(os.loadavg()[0]! * 10) / 10,
    ...extra,
  });
  const skip = await s.skipReason();
  if (skip !== null) {
    log(`== ${s.name}: skipped: ${skip}`);
    return record('skipped', { reason: skip });
  }
  log(`== ${s.name}: ${s.title}`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), `swy-bench-${s.name}-`));
  const services: Service[] = [];
  running = services;
  const ctx: ScenarioContext = { ...base, tmp, services };
  try {
    const result: ScenarioResult = await withDeadline(s.run(ctx), base.smoke ? SMOKE_BUDGET_SEC : s.budgetSec, s.name);
    return record('ok', { result });
  } catch (err) {
    log(`!! ${s.name} failed: ${(err as Error).message}`);
    for (const svc of services) if (!svc.alive()) log(`   ${svc.name} (pid ${svc.pid}) had exited:\n${svc.output().slice(-2000)}`);
    return record('failed', { reason: (err as Error).message.split('\n')[0] });
  } finally {
    await stopAll(services);
    await rm(tmp, { recursive: true, force: true });
  }
}

async function updateReadme(text: string): Promise<void> {
  const file = path.join(HERE, 'README.md');
  const current = await readFile(file, 'utf8');
  const a = current.indexOf(README_START);
  const b = current.indexOf(README_END);
  if (a < 0 || b < a) throw new Error(`bench/README.md lacks the ${README_START} / ${README_END} markers`);
  await writeFile(file, `${current.slice(0, a + README_START.length)}\n${text}\n${current.slice(b)}`);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      smoke: { type: 'boolean', default: false },
      out: { type: 'string' },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      readme: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    log(USAGE);
    return 0;
  }
  if (values.list) {
    for (const s of SCENARIOS) log(`${s.name.padEnd(20)} ${s.title}`);
    return 0;
  }
  const unknown = positionals.filter((p) => !SCENARIOS.some((s) => s.name === p));
  if (unknown.length > 0) {
    console.error(`unknown scenario(s): ${unknown.join(', ')}\n${USAGE}`);
    return 2;
  }
  const smoke = values.smoke;
  const rounds = smoke ? 1 : Math.max(3, Number(values.rounds ?? 3) || 3);
  const durationSec = smoke ? 1 : Math.max(1, Number(values.duration ?? 3) || 3);
  const outDir = path.resolve(values.out ?? path.join(HERE, 'results'));
  const chosen = positionals.length > 0 ? SCENARIOS.filter((s) => positionals.includes(s.name)) : SCENARIOS;

  stopOnSignals();
  ensureTools(log);
  const meta: RunMeta = { date: new Date().toISOString(), machine: machineFacts(), smoke, rounds, durationSec };
  log(`machine: ${meta.machine.nproc} vCPU ${meta.machine.cpuModel}, Node ${meta.machine.node}; results -> ${outDir}`);
  const started = Date.now();
  const cpu0 = systemCpu();
  const records: ScenarioRecord[] = [];
  for (const s of chosen) {
    const rec = await runOne(s, { smoke, rounds, durationSec, warmupSec: smoke ? 0 : 2, log });
    records.push(rec);
    await writeScenario(outDir, rec, meta);
    log('');
    log(scenarioMarkdown(rec, meta));
  }
  const steal = stealPercent(cpu0, systemCpu());
  const seconds = (Date.now() - started) / 1000;
  const summary = summaryMarkdown(records, meta, steal, seconds);
  await writeSummary(outDir, summary);
  if (values.readme) await updateReadme(summary);
  log(`== done in ${Math.round(seconds)} s; CPU steal over the run: ${steal} %; ` +
    records.map((r) => `${r.scenario} ${r.status}`).join(', '));
  return records.some((r) => r.status === 'failed') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
