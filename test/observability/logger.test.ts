// Application log lines: ISO 8601 times (the access log's format), and the human-readable rendering used on a
// terminal, checked on lines the real gateway CLI prints (SWITCHYARD_LOG_FORMAT forces either rendering).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { prettyLine } from '../../src/observability/logger.ts';
import { baseConfig, killAll, ports, startCli, writeConfig } from '../foundation/cli-helpers.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-logfmt-'));
});

afterAll(async () => {
  await killAll();
  await cleanup?.();
});

/** Starts the CLI on a config with a key that has no effect here (a start-up warning) and returns its output. */
async function startOutput(format: string): Promise<string> {
  const p = await ports();
  const conf = baseConfig(p);
  conf.apisix.enable_reuseport = false;
  const file = await writeConfig(dir, conf);
  const gw = await startCli(file, p.status, { SWITCHYARD_LOG_FORMAT: format });
  const out = await waitFor(() => (gw.peer.output().includes('enable_reuseport') ? gw.peer.output() : null), 10_000);
  await gw.peer.stop();
  return out!;
}

describe('application log lines', () => {
  test('pretty rendering: time, level, component, message, fields, error stack', () => {
    const line = JSON.stringify({ level: 40, time: '2026-12-06T10:00:00.000Z', pid: 1, component: 'etcd', msg: 'watch lost', key: 'a b', n: 3, err: { message: 'boom', stack: 'Error: boom\n    at f (x.ts:1:1)' } });
    expect(prettyLine(line)).toBe('2026-12-06T10:00:00.000Z WARN  [etcd] watch lost key="a b" n=3 err=boom\n    at f (x.ts:1:1)\n');
    expect(prettyLine('not json\n')).toBe('not json\n');
  });

  test('the CLI logs JSON with ISO times, or pretty lines when asked', async () => {
    const json = await startOutput('json');
    const warn = json.split('\n').find((l) => l.includes('enable_reuseport'));
    expect(warn, json).toBeDefined();
    expect(JSON.parse(warn!).time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const pretty = await startOutput('pretty');
    expect(pretty).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z WARN .*enable_reuseport/m);
  }, 120_000);
});
