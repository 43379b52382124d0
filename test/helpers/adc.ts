// ADC (api7/adc, APISIX's declarative CLI) as a real client of the Admin API. ADC is not on npm; the tests
// that use it run only when SWY_ADC_BIN names a built CLI (the bundled `dist/apps/cli/main.cjs`, run on this
// Node, or an executable). Building it from its source (verified offline against the npm registry, Node 24):
//   git clone https://github.com/api7/adc /tmp/adc && cd /tmp/adc
//   in pnpm-workspace.yaml's catalog and pnpm-lock.yaml replace datum-diff 1.0.4 (not on npm) by 0.9.1, with
//     0.9.1's integrity from `npm view datum-diff@0.9.1 dist.integrity`
//   npx pnpm@11.10.0 install --frozen-lockfile && NX_DAEMON=false npx nx build cli
//   export SWY_ADC_BIN=/tmp/adc/dist/apps/cli/main.cjs
// Nothing of ADC is kept in this repository, only transcripts of its Admin API calls (test/compat/fixtures/adc/,
// recorded by test/compat/adc-record.test.ts, replayed without ADC by test/compat/adc-replay.test.ts).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export const ADC_ENV = 'SWY_ADC_BIN';

/** The built ADC CLI, or undefined when SWY_ADC_BIN is unset or names no file. */
export function adcBin(): string | undefined {
  const bin = process.env[ADC_ENV];
  return bin && existsSync(bin) ? bin : undefined;
}

/**
 * Why ADC tests are skipped (for the test title), or null when they run: only an unset SWY_ADC_BIN skips. A
 * set one that names no file throws, so a mistyped path fails the run instead of hiding it.
 */
export function adcSkipReason(): string | null {
  const bin = process.env[ADC_ENV];
  if (!bin) return `${ADC_ENV} is not set (build api7/adc as test/helpers/adc.ts describes)`;
  if (!existsSync(bin)) throw new Error(`${ADC_ENV}=${bin} does not exist`);
  return null;
}

export interface AdcResult {
  code: number | null;
  /** stdout and stderr together: ADC logs its task list and errors on both. */
  output: string;
}

export interface AdcTarget {
  /** Admin API base URL without /apisix/admin, e.g. http://127.0.0.1:9180. */
  server: string;
  token: string;
  /** Working directory: `adc diff` writes diff.yaml there. */
  cwd: string;
}

/** Runs `adc <args>` against `target` (ADC_SERVER / ADC_TOKEN), bounded to 30 s. */
export function runAdc(bin: string, args: string[], target: AdcTarget): Promise<AdcResult> {
  const script = /\.(c|m)?js$/.test(bin);
  const cmd = script ? process.execPath : bin;
  const argv = script ? [bin, ...args] : args;
  return new Promise((resolve) => {
    execFile(
      cmd,
      argv,
      {
        cwd: target.cwd,
        env: { ...process.env, ADC_SERVER: target.server, ADC_TOKEN: target.token, NO_COLOR: '1', FORCE_COLOR: '0' },
        timeout: 30_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        resolve({ code, output: `${stdout}\n${stderr}` });
      },
    );
  });
}
