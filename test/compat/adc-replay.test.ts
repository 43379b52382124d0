// ADC (api7/adc) against the gateway without ADC (issue 16): replays the Admin API calls a real ADC made, as
// recorded by adc-record.test.ts into fixtures/adc/ (README there: ADC version, commit, how to re-record), on a
// fresh gateway with a fresh echo upstream. Every recorded request is sent in order and its answer must match
// the recorded one: status, the headers ADC reads (server: the APISIX version ADC keys features on, x-digest of
// the configs API exactly, x-last-modified present), and the body, where create_time, update_time,
// createdIndex and modifiedIndex need only be present with the recorded type. The data plane serves what the
// replayed syncs configured, and the last dump's list calls answer what ADC saw. Runs always; adc.test.ts and
// adc-standalone.test.ts run the real ADC when SWY_ADC_BIN is set.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RESPONSE_HEADERS, recordBody, unmask, type Exchange, type RecordedStep, type Recording, type Substitutions } from '../helpers/adc-recorder.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { NO_EXPORTER } from '../foundation/cli-helpers.ts';
import { basicAuth, fetchText, servesDeclared } from './adc-fixture.ts';

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'adc');
const load = (backend: string): Recording => JSON.parse(readFileSync(path.join(FIXTURES, `${backend}.json`), 'utf8')) as Recording;

/** Fields that differ from run to run: present, with the recorded type, any value. */
const VOLATILE = new Set(['create_time', 'update_time', 'createdIndex', 'modifiedIndex']);

/** `value` with every VOLATILE field replaced by a marker of its type, so toEqual() compares the rest. */
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = VOLATILE.has(k) ? `<${typeof v}>` : normalize(v);
    return out;
  }
  return value;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Sends one recorded request (placeholders filled in) to the gateway's Admin API. */
function send(gw: TestGateway, ex: Exchange, subs: Substitutions): Promise<Answer> {
  const admin = new URL(gw.adminUrl);
  const headers = unmask(ex.request.headers, subs) as Record<string, string>;
  const body = ex.request.body !== undefined ? JSON.stringify(unmask(ex.request.body, subs)) : (ex.request.text ?? '');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: admin.hostname, port: admin.port, method: ex.method, path: unmask(ex.path, subs) as string, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Replays a step's exchanges in order; asserts each answer matches the recording. Returns the answers. */
async function replay(gw: TestGateway, step: RecordedStep, subs: Substitutions): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const [i, ex] of step.exchanges.entries()) {
    const what = `${step.name} #${i}: ${ex.method} ${ex.path}`;
    const got = await send(gw, ex, subs);
    answers.push(got);
    expect(got.status, `${what}: ${got.text}`).toBe(ex.response.status);

    const want = ex.response.headers;
    const seen: Record<string, string> = {};
    for (const n of RESPONSE_HEADERS) if (got.headers[n] !== undefined) seen[n] = String(got.headers[n]);
    expect(Object.keys(seen).sort(), `${what}: response headers`).toEqual(Object.keys(want).sort());
    for (const [n, v] of Object.entries(want)) {
      if (n === 'x-last-modified') expect(seen[n], `${what}: ${n}`).toMatch(/^\d+$/);
      else expect(seen[n], `${what}: ${n}`).toBe(v);
    }

    const gotBody = recordBody(got.text);
    if (ex.response.body !== undefined) {
      expect(gotBody.body, `${what}: JSON body`).toBeDefined();
      expect(normalize(gotBody.body), `${what}: body`).toEqual(normalize(unmask(ex.response.body, subs)));
    } else {
      expect(gotBody.text, `${what}: body`).toBe(ex.response.text);
    }
  }
  return answers;
}

/** The recorded step of that name (the fixture must hold it: a re-recording that drops a step fails here). */
function stepOf(rec: Recording, name: string): RecordedStep {
  const s = rec.steps.find((x) => x.name === name);
  if (!s) throw new Error(`fixtures/adc/${rec.backend}.json has no step ${name}`);
  return s;
}

function listed(a: Answer): string[] {
  const body = JSON.parse(a.text) as { list: Array<{ value: { name?: string; username?: string; id: string } }> };
  return body.list.map((i) => i.value.name ?? i.value.username ?? i.value.id).sort();
}

describe('ADC replay: resource Admin API (fixtures/adc/apisix.json)', () => {
  const rec = load('apisix');
  let gw: TestGateway;
  let echo: EchoServer;
  let subs: Substitutions;
  beforeAll(async () => {
    echo = await startEcho('adc');
    gw = await startTestGateway({ config: NO_EXPORTER });
    subs = { UPSTREAM_PORT: echo.port, ADMIN_KEY };
  });
  afterAll(async () => {
    await gw?.close();
    await echo?.close();
  });

  it('the recording covers ping, sync, diff, dump, removals and validate', () => {
    expect(rec.steps.map((s) => s.name)).toEqual([
      'ping', 'sync', 'diff-unchanged', 'sync-unchanged', 'dump', 'diff-dump', 'sync-removals', 'sync-delete-consumer',
      'diff-after-removals', 'validate-good', 'validate-bad', 'dump-final',
    ]);
    const writes = rec.steps.flatMap((s) => s.exchanges).filter((e) => e.method !== 'GET');
    expect(writes.filter((e) => e.method === 'PUT').length).toBeGreaterThanOrEqual(16);
    expect(writes.filter((e) => e.method === 'DELETE').length).toBe(3);
  });

  it('ping and the first sync create every resource kind; the data plane serves them', async () => {
    await replay(gw, stepOf(rec, 'ping'), subs);
    await replay(gw, stepOf(rec, 'sync'), subs);
    await servesDeclared(gw);
  });

  it('diff, an unchanged sync, dump and diff of the dump read the same lists ADC read', async () => {
    for (const name of ['diff-unchanged', 'sync-unchanged', 'dump', 'diff-dump']) {
      const step = stepOf(rec, name);
      // Nothing to change: ADC only read.
      expect(step.exchanges.every((e) => e.method === 'GET'), name).toBe(true);
      await replay(gw, step, subs);
    }
  });

  it('removals and changes: a route, a credential, a plugin setting, then a consumer', async () => {
    await replay(gw, stepOf(rec, 'sync-removals'), subs);
    await gw.synced();
    expect((await fetchText(`${gw.url}/health`)).status).toBe(404);
    expect((await fetchText(`${gw.url}/private`, { host: 'orders.test', authorization: basicAuth('bob', 'bob-pw') })).status).toBe(401);
    expect((await fetchText(`${gw.url}/orders`, { host: 'orders.test' })).headers.get('x-ratelimit-limit')).toBe('7');

    await replay(gw, stepOf(rec, 'sync-delete-consumer'), subs);
    expect((await gw.admin('GET', '/consumers/bob')).status).toBe(404);
    await replay(gw, stepOf(rec, 'diff-after-removals'), subs);
  });

  it('validate: POST /configs/validate accepts the good file and answers the recorded error for the bad one', async () => {
    await replay(gw, stepOf(rec, 'validate-good'), subs);
    const [bad] = await replay(gw, stepOf(rec, 'validate-bad'), subs);
    expect(JSON.parse(bad!.text).error_msg).toBe('Configuration validation failed');
    // Validation changed nothing.
    await gw.synced();
    expect((await fetchText(`${gw.url}/orders`, { host: 'orders.test' })).headers.get('x-ratelimit-limit')).toBe('7');
  });

  it('the final dump lists what ADC saw', async () => {
    const step = stepOf(rec, 'dump-final');
    const answers = await replay(gw, step, subs);
    const byPath = new Map(step.exchanges.map((e, i) => [e.path, answers[i]!]));
    expect(listed(byPath.get('/apisix/admin/routes')!)).toEqual(['items', 'orders', 'private']);
    expect(listed(byPath.get('/apisix/admin/services')!)).toEqual(['catalog', 'orders']);
    expect(listed(byPath.get('/apisix/admin/consumers')!)).toEqual(['alice']);
    expect(listed(byPath.get('/apisix/admin/consumers/alice/credentials')!)).toEqual(['alice-key']);
    expect(listed(byPath.get('/apisix/admin/upstreams')!)).toEqual(['catalog', 'orders', 'orders-canary']);
  });
});

describe('ADC replay: apisix-standalone backend, /apisix/admin/configs (fixtures/adc/apisix-standalone.json)', () => {
  const rec = load('apisix-standalone');
  let gw: TestGateway;
  let echo: EchoServer;
  let subs: Substitutions;
  beforeAll(async () => {
    echo = await startEcho('adc');
    gw = await startTestGateway({ config: NO_EXPORTER });
    subs = { UPSTREAM_PORT: echo.port, ADMIN_KEY };
  });
  afterAll(async () => {
    await gw?.close();
    await echo?.close();
  });

  /** The X-Digest ADC sent with the step's PUT /configs. */
  const putDigest = (step: RecordedStep): string => {
    const put = step.exchanges.filter((e) => e.method === 'PUT' && e.path === '/apisix/admin/configs');
    expect(put, step.name).toHaveLength(1);
    return put[0]!.request.headers['x-digest']!;
  };
  const headDigest = async (): Promise<string | null> =>
    (await fetch(`${gw.adminUrl}/configs`, { method: 'HEAD', headers: { 'x-api-key': ADMIN_KEY } })).headers.get('x-digest');

  it('sync PUTs the whole configuration with a digest; the data plane serves it', async () => {
    const step = stepOf(rec, 'sync');
    await replay(gw, step, subs);
    expect(await headDigest()).toBe(putDigest(step));
    await servesDeclared(gw);
  });

  it('diff, an unchanged sync, dump and diff of the dump read the configuration and digest ADC read', async () => {
    for (const name of ['diff-unchanged', 'sync-unchanged', 'dump', 'diff-dump']) await replay(gw, stepOf(rec, name), subs);
    expect(await headDigest()).toBe(putDigest(stepOf(rec, 'sync-unchanged')));
  });

  it('a change (one route fewer) is a new digest and the data plane follows', async () => {
    const step = stepOf(rec, 'sync-change');
    await replay(gw, step, subs);
    expect(await headDigest()).toBe(putDigest(step));
    await gw.synced();
    expect((await fetchText(`${gw.url}/health`)).status).toBe(404);
    expect((await fetchText(`${gw.url}/items/1`, { apikey: 'alice-secret-key' })).status).toBe(200);
  });

  it('validate answers the recorded error; the final dump is what ADC saw', async () => {
    await replay(gw, stepOf(rec, 'validate-bad'), subs);
    const step = stepOf(rec, 'dump-final');
    const answers = await replay(gw, step, subs);
    const configs = JSON.parse(answers.at(-1)!.text) as { routes: Array<{ name: string }> };
    expect(configs.routes.map((r) => r.name).sort()).toEqual(['items', 'orders', 'private']);
  });
});
