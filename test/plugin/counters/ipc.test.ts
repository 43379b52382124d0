// The node-wide counter protocol between a real cluster primary and two workers (ipc-fixture.ts): batched
// counts are decided once for the node, and a worker whose primary does not answer counts on its own after
// the fallback delay instead of hanging.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ipc-fixture.ts');

interface Report {
  allowed: number;
  maxCount: number;
  leaks: number[];
  ms: number;
}

function run(mode: 'attach' | 'none'): Promise<Report[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [FIXTURE, mode], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      // Log lines (pino, on stdout) are not reports.
      const lines = stdout.trim().split('\n').filter((l) => l.includes('"type":"report"'));
      resolve(lines.map((l) => JSON.parse(l) as Report));
    });
  });
}

describe('node-wide counters over cluster IPC', () => {
  it('decides every count once for the node', async () => {
    const reports = await run('attach');
    expect(reports).toHaveLength(2);
    // 60 counts against a limit of 40: exactly 40 allowed in total, the last count seen is 60.
    expect(reports[0]!.allowed + reports[1]!.allowed).toBe(40);
    expect(Math.max(reports[0]!.maxCount, reports[1]!.maxCount)).toBe(60);
    // One leaky bucket with burst 0 for the node: one request passes, three are rejected (-1).
    expect([...reports[0]!.leaks, ...reports[1]!.leaks].sort()).toEqual([-1, -1, -1, 0]);
  }, 30_000);

  it('falls back to counting in the worker when the primary does not answer', async () => {
    const reports = await run('none');
    expect(reports).toHaveLength(2);
    for (const r of reports) {
      expect(r.allowed).toBe(30);
      expect(r.maxCount).toBe(30);
      // Each worker's own bucket; only the first batch waited for the primary, the next went local at once.
      expect(r.leaks).toEqual([0, -1]);
      expect(r.ms).toBeGreaterThanOrEqual(900);
      expect(r.ms).toBeLessThan(2000);
    }
  }, 30_000);
});
