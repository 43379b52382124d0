// ADC (api7/adc), APISIX's declarative CLI, run for real against the gateway's resource Admin API (issue 16):
// sync of a file with services (inline upstream, named extra upstream), routes, consumers with credentials, an
// SSL, a global rule and plugin metadata; the data plane serves what was synced; a second sync and `adc diff`
// find nothing to do; `adc dump` round-trips; removals are applied; `adc validate` passes a good file and reports
// the gateway's error (POST /apisix/admin/configs/validate) for a bad one. adc-standalone.test.ts covers
// `--backend apisix-standalone`. Skipped unless SWY_ADC_BIN names a built ADC (see test/helpers/adc.ts).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { adcBin, adcSkipReason } from '../helpers/adc.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { NO_EXPORTER } from '../foundation/cli-helpers.ts';
import { basicAuth, fetchText, startAdcFixture, type AdcFixture } from './adc-fixture.ts';

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });

const BIN = adcBin();
const SKIP = adcSkipReason();
const TITLE = SKIP === null ? 'ADC (apisix backend)' : `ADC (apisix backend) skipped: ${SKIP}`;

let fx: AdcFixture;

if (SKIP !== null) console.warn(`${TITLE}`);

beforeAll(async () => {
  if (SKIP === null) fx = await startAdcFixture(BIN!);
});
afterAll(async () => {
  await fx?.close();
});

describe.skipIf(SKIP !== null)(TITLE, () => {
  describe('resource Admin API', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startTestGateway({ config: NO_EXPORTER });
    });
    afterAll(async () => {
      await gw?.close();
    });

    it('ping, then sync creates every resource and the data plane serves them', async () => {
      const ping = await fx.adc(gw, ['ping']);
      expect(ping.code, ping.output).toBe(0);
      const file = await fx.writeDecl('adc.yaml', fx.declarative());
      const out = await fx.adc(gw, ['sync', '-f', file]);
      expect(out.code, out.output).toBe(0);
      // ADC read the APISIX version from the Server header: credentials need 3.11+ and were written.
      expect(out.output).not.toContain('only supported in Apache APISIX version');
      expect(out.output).toContain('Create consumer_credential: "alice-key"');

      expect((await gw.admin('GET', '/services')).body.total).toBe(2);
      expect((await gw.admin('GET', '/routes')).body.total).toBe(4);
      expect((await gw.admin('GET', '/upstreams')).body.total).toBe(3);
      expect((await gw.admin('GET', '/ssls')).body.total).toBe(1);
      const creds = (await gw.admin('GET', '/consumers/alice/credentials')).body;
      expect(creds.total).toBe(1);
      // APISIX answers a credential's id as given in the URL, never as its storage path.
      expect(creds.list[0].value.id).not.toContain('/');
      expect(creds.list[0].value.name).toBe('alice-key');
      expect((await gw.admin('GET', '/plugin_metadata/http-logger')).status).toBe(200);
      await fx.servesDeclared(gw);
    });

    it('a second sync and diff find nothing to change; dump round-trips through diff', async () => {
      const file = path.join(fx.dir, 'adc.yaml');
      expect(await fx.diff(gw, file)).toEqual([]);
      const again = await fx.adc(gw, ['sync', '-f', file]);
      expect(again.code, again.output).toBe(0);
      expect(again.output).not.toMatch(/(Create|Update|Delete) /);

      const dumpFile = path.join(fx.dir, 'dump.yaml');
      const dumped = await fx.adc(gw, ['dump', '-o', dumpFile]);
      expect(dumped.code, dumped.output).toBe(0);
      const dump = parse(await readFile(dumpFile, 'utf8')) as Record<string, any>;
      expect(dump.services.map((s: { name: string }) => s.name).sort()).toEqual(['catalog', 'orders']);
      const catalog = dump.services.find((s: { name: string }) => s.name === 'catalog');
      expect(catalog.routes.map((r: { name: string }) => r.name).sort()).toEqual(['health', 'items']);
      expect(catalog.upstream.timeout).toEqual({ connect: 5, send: 5, read: 5 });
      const alice = dump.consumers.find((c: { username: string }) => c.username === 'alice');
      expect(alice.credentials).toEqual([{ name: 'alice-key', type: 'key-auth', config: { key: 'alice-secret-key' } }]);
      expect(dump.ssls[0].snis).toEqual(['adc.test']);
      expect(dump.global_rules['response-rewrite'].headers.set['x-global']).toBe('adc');
      expect(dump.plugin_metadata['http-logger'].log_format).toEqual({ host: '$host' });
      // ADC dumps certificates without their private key (APISIX stores it encrypted), so the dump cannot
      // describe the SSL; everything else it describes exactly: diffing it against the gateway finds nothing.
      expect(dump.ssls[0].certificates[0].key).toBeUndefined();
      expect(await fx.diff(gw, dumpFile, 'apisix', ['--exclude-resource-type', 'ssl'])).toEqual([]);
    });

    it('sync applies removals and changes (routes, credentials, consumers, plugins)', async () => {
      // Credentials go first, in a sync of their own. ADC (0.27 era) deletes a removed consumer and then each
      // of its credentials; APISIX 3.11+ (admin/resource.lua) already removes a consumer's credentials with
      // it, so that second DELETE is a 404 there as here, and ADC stops.
      const conf = fx.declarative();
      conf.services[0].routes = conf.services[0].routes.filter((r: { name: string }) => r.name !== 'health');
      conf.services[1].routes[0].plugins['limit-count'].count = 7;
      delete conf.consumers[1].credentials;
      const first = await fx.writeDecl('adc-2.yaml', conf);
      const out = await fx.adc(gw, ['sync', '-f', first]);
      expect(out.code, out.output).toBe(0);
      expect(out.output).toContain('Delete consumer_credential: "bob-basic"');
      expect(out.output).toContain('Delete route: "health"');
      expect((await gw.admin('GET', '/consumers/bob/credentials')).body.total).toBe(0);
      expect((await gw.admin('GET', '/routes')).body.total).toBe(3);
      await gw.synced();
            expect((await fetchText(`${gw.url}/private`, { host: 'orders.test', authorization: basicAuth('bob', 'bob-pw') })).status).toBe(401);
      expect((await fetchText(`${gw.url}/health`)).status).toBe(404);
      expect((await fetchText(`${gw.url}/orders`, { host: 'orders.test' })).headers.get('x-ratelimit-limit')).toBe('7');

      conf.consumers = conf.consumers.filter((c: { username: string }) => c.username !== 'bob');
      const second = await fx.writeDecl('adc-3.yaml', conf);
      const out2 = await fx.adc(gw, ['sync', '-f', second]);
      expect(out2.code, out2.output).toBe(0);
      expect(out2.output).toContain('Delete consumer: "bob"');
      expect((await gw.admin('GET', '/consumers/bob')).status).toBe(404);
      expect(await fx.diff(gw, second)).toEqual([]);
    });

    it('validate accepts a good file and reports the gateway\'s error for a bad one (POST /configs/validate)', async () => {
      const good = await fx.adc(gw, ['validate', '-f', path.join(fx.dir, 'adc.yaml')]);
      expect(good.code, good.output).toBe(0);
      const conf = fx.declarative();
      conf.services[1].routes[0].plugins['limit-count'] = { time_window: 60 };
      const bad = await fx.adc(gw, ['validate', '-f', await fx.writeDecl('adc-bad.yaml', conf)]);
      expect(bad.code).toBe(1);
      expect(bad.output).toContain('Configuration validation failed');
      expect(bad.output).toContain('name="orders"');
      expect(bad.output).toContain('failed to check the configuration of plugin limit-count');
      expect(bad.output).toContain('object matches none of the required: ["count","time_window"] or ["rules"]');
      // Validation changed nothing.
      expect((await fetchText(`${gw.url}/orders`, { host: 'orders.test' })).headers.get('x-ratelimit-limit')).toBe('7');
    });
  });
});
