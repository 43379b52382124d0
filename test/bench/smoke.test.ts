// Keeps the benchmark harness from rotting: `node bench/run.ts --smoke` must run every available scenario
// (short runs, one round), exit 0 and write its result files. Results go to a temp dir, not bench/results.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/proc.ts';
import { SCENARIOS } from '../../bench/scenarios/index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Eleven scenarios at about a second per measurement, on a 2-core machine that may be busy.
const TIMEOUT_MS = 300_000;

let cleanup: (() => Promise<void>) | null = null;
afterAll(async () => {
  await cleanup?.();
});

function runSmoke(out: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bench/run.ts', '--smoke', '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-50_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGTERM'), TIMEOUT_MS - 5_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('bench --smoke', () => {
  it(
    'runs every scenario, exits 0 and writes <scenario>.json/.md and summary.md',
    async () => {
      const tmp = await tempDir('swy-bench-smoke-');
      cleanup = tmp.cleanup;
      const r = await runSmoke(tmp.dir);
      expect(r.code, r.output).toBe(0);
      for (const s of SCENARIOS) {
        const json = path.join(tmp.dir, `${s.name}.json`);
        expect(existsSync(json), `${s.name}.json missing\n${r.output}`).toBe(true);
        expect(existsSync(path.join(tmp.dir, `${s.name}.md`))).toBe(true);
        const rec = JSON.parse(readFileSync(json, 'utf8')) as { status: string; summary: unknown; meta: { smoke: boolean } };
        expect(['ok', 'skipped']).toContain(rec.status);
        expect(rec.meta.smoke).toBe(true);
        if (rec.status === 'ok') expect(rec.summary).not.toBeNull();
      }
      expect(readFileSync(path.join(tmp.dir, 'summary.md'), 'utf8')).toContain('CPU steal over the whole run');
    },
    TIMEOUT_MS,
  );
});
