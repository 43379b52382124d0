// clickhouse-logger against a real clickhouse-server (Debian) started on loopback: rows inserted through
// ClickHouse's HTTP interface with the user, key and database headers are read back with SELECT; a wrong
// password is refused by ClickHouse itself and the batch ends in the dropped-entries counter.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clickhouseInsert, clickhouseLoggerPlugin as def } from '../../src/plugin/builtin/clickhouse-logger.ts';
import { startClickHouse, type ClickHouse } from '../helpers/clickhouse.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { confError } from '../plugin/helpers.ts';
import { scrape, value } from './prom-text.ts';

describe('clickhouse-logger (real clickhouse-server)', () => {
  let ch: ClickHouse;
  let gw: TestGateway;
  let up: EchoServer;
  let metricsUrl = '';
  const rows = async (where: string) =>
    (await ch.query(`SELECT route_id, host, status, client, path FROM default.access WHERE ${where} ORDER BY path FORMAT JSONEachRow`))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    [ch, up, gw] = await Promise.all([startClickHouse(), startEcho('ch-up'), startTestGateway()]);
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    await ch.query('CREATE TABLE default.access (route_id String, host String, status UInt16, client String, path String) ENGINE = Memory');
    const upstream = { nodes: { [up.addr]: 1 } };
    const conf = {
      user: 'logger',
      password: 'secret',
      database: 'default',
      logtable: 'access',
      log_format: { host: '$host', status: '$status', client: '$remote_addr', path: '$uri' },
      batch_max_size: 2,
      inactive_timeout: 1,
    };
    await gw.put('/routes/ch', { uri: '/ch/*', upstream, plugins: { 'clickhouse-logger': { ...conf, endpoint_addr: ch.url } } });
    await gw.put('/routes/many', { uri: '/many', upstream, plugins: { 'clickhouse-logger': { ...conf, endpoint_addrs: [ch.url, ch.url], batch_max_size: 1 } } });
    await gw.put('/routes/denied', {
      uri: '/denied',
      upstream,
      plugins: { prometheus: {}, 'clickhouse-logger': { ...conf, name: 'ch-denied', password: 'wrong', endpoint_addr: ch.url, batch_max_size: 1 } },
    });
  }, 30_000);

  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await ch?.stop();
  });

  it('validates like APISIX (exactly one of endpoint_addr, endpoint_addrs)', () => {
    const base = { user: 'u', password: 'p', database: 'd', logtable: 't' };
    expect(confError(def, { ...base, endpoint_addr: 'http://127.0.0.1:8123' })).toBeNull();
    expect(confError(def, { ...base, endpoint_addrs: ['http://127.0.0.1:8123'] })).toBeNull();
    expect(confError(def, { ...base })).not.toBeNull();
    // user/password/database/logtable have defaults, which satisfy `required` (as in APISIX's validator).
    expect(confError(def, { endpoint_addr: 'http://127.0.0.1:8123' })).toBeNull();
    expect(confError(def, { ...base, endpoint_addr: 'http://127.0.0.1:8123', endpoint_addrs: ['http://127.0.0.1:8123'] })).not.toBeNull();
    expect(clickhouseInsert('t', [{ a: 1 }, { a: 2 }])).toBe('INSERT INTO t FORMAT JSONEachRow {"a":1} {"a":2}');
  });

  it('inserts batches of log_format rows that ClickHouse stores', async () => {
    for (const p of ['/ch/1', '/ch/2', '/ch/3']) expect((await fetch(`${gw.url}${p}`)).status).toBe(200);
    // Two rows at once (batch_max_size 2), the third after inactive_timeout.
    await waitFor(async () => (await rows("route_id = 'ch'")).length === 3, 8000, 100);
    expect(await rows("route_id = 'ch'")).toEqual([
      { route_id: 'ch', host: '127.0.0.1', status: 200, client: '127.0.0.1', path: '/ch/1' },
      { route_id: 'ch', host: '127.0.0.1', status: 200, client: '127.0.0.1', path: '/ch/2' },
      { route_id: 'ch', host: '127.0.0.1', status: 200, client: '127.0.0.1', path: '/ch/3' },
    ]);
  });

  it('spreads batches over endpoint_addrs', async () => {
    for (let i = 0; i < 2; i++) expect((await fetch(`${gw.url}/many`)).status).toBe(200);
    await waitFor(async () => (await rows("route_id = 'many'")).length === 2, 8000, 100);
  });

  it('a password ClickHouse refuses drops the entries and counts them', async () => {
    const metric = async () => value(await scrape(metricsUrl), 'apisix_batch_process_dropped_entries_total', { name: 'ch-denied' });
    const before = await metric();
    for (let i = 0; i < 3; i++) expect((await fetch(`${gw.url}/denied`)).status).toBe(200);
    await waitFor(async () => (await metric()) - before >= 3, 8000, 100);
    expect(await rows("route_id = 'denied'")).toEqual([]);
  });
});
