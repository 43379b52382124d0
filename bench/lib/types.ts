// The scenario contract: bench/run.ts looks scenarios up by name in bench/scenarios/index.ts and gives each a
// context (durations, temp dir, a list the services it starts go on so they are stopped whatever happens).
import type { Service } from './service.ts';

export interface Table {
  title: string;
  columns: string[];
  rows: string[][];
}

export interface ScenarioResult {
  /** Key figures, machine-readable (written to bench/results/<scenario>.json). */
  summary: Record<string, unknown>;
  tables: Table[];
  /** Method notes and caveats printed under the tables. */
  notes: string[];
}

export interface ScenarioContext {
  readonly smoke: boolean;
  /** Measured rounds per target (targets alternate A B A B within each round). */
  readonly rounds: number;
  /** Seconds per measured load run. */
  readonly durationSec: number;
  readonly warmupSec: number;
  /** A fresh temp dir for this scenario, removed afterwards. */
  readonly tmp: string;
  /** Every started service goes here; the runner stops them in reverse order after the scenario. */
  readonly services: Service[];
  log(msg: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly title: string;
  /** Upper bound of the full (non-smoke) run, seconds; the runner aborts the scenario past it. */
  readonly budgetSec: number;
  /** null when runnable, else why the scenario is skipped (printed and recorded). */
  skipReason(): Promise<string | null>;
  run(ctx: ScenarioContext): Promise<ScenarioResult>;
}
