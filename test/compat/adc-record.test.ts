// Records the Admin API calls a real ADC (api7/adc) makes against the gateway, for adc-replay.test.ts (issue 16):
// the scenarios of adc.test.ts (resource Admin API) and adc-standalone.test.ts (`--backend apisix-standalone`,
// /apisix/admin/configs), driven through test/helpers/adc-recorder.ts. Runs only when SWY_ADC_BIN names a built
// ADC (test/helpers/adc.ts). With SWY_ADC_RECORD=1 it rewrites test/compat/fixtures/adc/*.json; without, it
// checks that this ADC still makes the recorded calls (method, path, status, step by step), so a newer ADC that
// talks differently says so instead of leaving the fixtures silently stale. See fixtures/adc/README.md.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { adcBin, adcSkipReason, runAdc } from '../helpers/adc.ts';
import { startRecorder, type Recorder, type RecordedStep, type Recording } from '../helpers/adc-recorder.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { NO_EXPORTER } from '../foundation/cli-helpers.ts';
import { startAdcFixture, type AdcFixture } from './adc-fixture.ts';

// A dozen ADC runs per test, each a few seconds of CLI start-up on a loaded machine.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 30_000 });

const run = promisify(execFile);
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'adc');
const BIN = adcBin();
const SKIP = adcSkipReason();
const WRITE = process.env.SWY_ADC_RECORD === '1';
const TITLE = SKIP === null ? `ADC recording (${WRITE ? 'writes' : 'checks'} fixtures/adc)` : `ADC recording skipped: ${SKIP}`;

let fx: AdcFixture;
let adcVersion = 'unknown';
let adcCommit = 'unknown';

beforeAll(async () => {
  if (SKIP !== null) return;
  const [cert, key] = await Promise.all([readFile(path.join(FIXTURES, 'cert.pem'), 'utf8'), readFile(path.join(FIXTURES, 'key.pem'), 'utf8')]);
  fx = await startAdcFixture(BIN!, { tls: { cert, key } });
  const v = await runAdc(BIN!, ['--version'], { server: 'http://127.0.0.1:1', token: '', cwd: fx.dir });
  adcVersion = v.output.trim();
  adcCommit = await run('git', ['-C', path.dirname(BIN!), 'describe', '--tags', '--always', '--long'])
    .then((r) => r.stdout.trim(), () => 'unknown');
});
afterAll(async () => {
  await fx?.close();
});

interface Step {
  name: string;
  args: string[];
  exit: number;
  /** What ADC printed must contain this, or NO_DIFF: the recording captured the intended behaviour. */
  says?: string | typeof NO_DIFF;
}

/** `adc diff` found nothing to change (it writes the changes to diff.yaml in its working directory). */
const NO_DIFF: unique symbol = Symbol('no diff');

/** Runs ADC steps through a recorder in front of `gw` and collects one RecordedStep per step. */
async function recordSteps(gw: TestGateway, steps: Step[]): Promise<RecordedStep[]> {
  const rec: Recorder = await startRecorder(gw.adminUrl.replace(/\/apisix\/admin$/, ''), { UPSTREAM_PORT: fx.echoPort, ADMIN_KEY });
  const out: RecordedStep[] = [];
  try {
    for (const s of steps) {
      const r = await runAdc(BIN!, s.args, { server: rec.url, token: ADMIN_KEY, cwd: fx.dir });
      expect(r.code, `${s.name}: ${r.output}`).toBe(s.exit);
      if (s.says === NO_DIFF) expect(parse(await readFile(path.join(fx.dir, 'diff.yaml'), 'utf8')), s.name).toEqual([]);
      else if (s.says !== undefined) expect(r.output, s.name).toContain(s.says);
      out.push({ name: s.name, args: s.args, exit_code: r.code, exchanges: rec.take() });
    }
  } finally {
    await rec.close();
  }
  return out;
}

async function save(backend: Recording['backend'], steps: RecordedStep[]): Promise<void> {
  const file = path.join(FIXTURES, `${backend}.json`);
  if (WRITE) {
    const recording: Recording = { recorded_by: 'test/compat/adc-record.test.ts', adc: { version: adcVersion, commit: adcCommit }, backend, steps };
    await writeFile(file, JSON.stringify(recording, null, 2) + '\n');
    return;
  }
  const committed = JSON.parse(await readFile(file, 'utf8')) as Recording;
  const calls = (ss: RecordedStep[]) => ss.map((s) => ({ step: s.name, exit: s.exit_code, calls: s.exchanges.map((e) => `${e.method} ${e.path} ${e.response.status}`) }));
  expect(calls(steps), `ADC ${adcVersion} (${adcCommit}) talks differently from the recording of ${committed.adc.commit}: re-record (fixtures/adc/README.md)`).toEqual(calls(committed.steps));
}

describe.skipIf(SKIP !== null)(TITLE, () => {
  it('resource Admin API backend: ping, sync, diff, re-sync, dump, removals, validate, final dump', async () => {
    const gw = await startTestGateway({ config: NO_EXPORTER });
    try {
      const full = fx.declarative();
      await fx.writeDecl('adc.yaml', full);
      // As adc.test.ts: credentials go in a sync of their own before their consumer.
      const removals = fx.declarative();
      removals.services[0].routes = removals.services[0].routes.filter((r: { name: string }) => r.name !== 'health');
      removals.services[1].routes[0].plugins['limit-count'].count = 7;
      delete removals.consumers[1].credentials;
      await fx.writeDecl('adc-2.yaml', removals);
      removals.consumers = removals.consumers.filter((c: { username: string }) => c.username !== 'bob');
      await fx.writeDecl('adc-3.yaml', removals);
      const bad = fx.declarative();
      bad.services[1].routes[0].plugins['limit-count'] = { time_window: 60 };
      await fx.writeDecl('adc-bad.yaml', bad);

      const steps = await recordSteps(gw, [
        { name: 'ping', args: ['ping'], exit: 0 },
        { name: 'sync', args: ['sync', '-f', 'adc.yaml'], exit: 0, says: 'Create consumer_credential: "alice-key"' },
        { name: 'diff-unchanged', args: ['diff', '--backend', 'apisix', '-f', 'adc.yaml'], exit: 0, says: NO_DIFF },
        { name: 'sync-unchanged', args: ['sync', '-f', 'adc.yaml'], exit: 0 },
        { name: 'dump', args: ['dump', '-o', 'dump.yaml'], exit: 0 },
        { name: 'diff-dump', args: ['diff', '--backend', 'apisix', '-f', 'dump.yaml', '--exclude-resource-type', 'ssl'], exit: 0, says: NO_DIFF },
        { name: 'sync-removals', args: ['sync', '-f', 'adc-2.yaml'], exit: 0, says: 'Delete consumer_credential: "bob-basic"' },
        { name: 'sync-delete-consumer', args: ['sync', '-f', 'adc-3.yaml'], exit: 0, says: 'Delete consumer: "bob"' },
        { name: 'diff-after-removals', args: ['diff', '--backend', 'apisix', '-f', 'adc-3.yaml'], exit: 0, says: NO_DIFF },
        { name: 'validate-good', args: ['validate', '-f', 'adc.yaml'], exit: 0 },
        { name: 'validate-bad', args: ['validate', '-f', 'adc-bad.yaml'], exit: 1, says: 'failed to check the configuration of plugin limit-count' },
        { name: 'dump-final', args: ['dump', '-o', 'dump-final.yaml'], exit: 0 },
      ]);
      await save('apisix', steps);
    } finally {
      await gw.close();
    }
  });

  it('apisix-standalone backend: sync, diff, re-sync, dump, change, validate, final dump', async () => {
    const gw = await startTestGateway({ config: NO_EXPORTER });
    try {
      await fx.writeDecl('adc-standalone.yaml', fx.declarative());
      const changed = fx.declarative();
      changed.services[0].routes = changed.services[0].routes.filter((r: { name: string }) => r.name !== 'health');
      await fx.writeDecl('adc-standalone-2.yaml', changed);
      const bad = fx.declarative();
      bad.services[1].routes[0].plugins['limit-count'] = { time_window: 60 };
      await fx.writeDecl('adc-standalone-bad.yaml', bad);
      const sa = ['--backend', 'apisix-standalone'];

      const steps = await recordSteps(gw, [
        { name: 'sync', args: ['sync', ...sa, '-f', 'adc-standalone.yaml'], exit: 0 },
        { name: 'diff-unchanged', args: ['diff', ...sa, '-f', 'adc-standalone.yaml'], exit: 0, says: NO_DIFF },
        { name: 'sync-unchanged', args: ['sync', ...sa, '-f', 'adc-standalone.yaml'], exit: 0 },
        { name: 'dump', args: ['dump', ...sa, '-o', 'standalone-dump.yaml'], exit: 0 },
        { name: 'diff-dump', args: ['diff', ...sa, '-f', 'standalone-dump.yaml', '--exclude-resource-type', 'ssl'], exit: 0, says: NO_DIFF },
        { name: 'sync-change', args: ['sync', ...sa, '-f', 'adc-standalone-2.yaml'], exit: 0 },
        { name: 'validate-bad', args: ['validate', ...sa, '-f', 'adc-standalone-bad.yaml'], exit: 1, says: 'failed to check the configuration of plugin limit-count' },
        { name: 'dump-final', args: ['dump', ...sa, '-o', 'standalone-dump-final.yaml'], exit: 0 },
      ]);
      await save('apisix-standalone', steps);
    } finally {
      await gw.close();
    }
  });
});
