// ADC's `--backend apisix-standalone` against the gateway's API-driven standalone endpoints (issue 16): GET/PUT
// /apisix/admin/configs with X-Digest and per-collection conf_version, POST /configs/validate; the data plane
// serves what ADC put. Skipped unless SWY_ADC_BIN names a built ADC (see test/helpers/adc.ts).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { adcBin, adcSkipReason } from '../helpers/adc.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { NO_EXPORTER } from '../foundation/cli-helpers.ts';
import { fetchText, startAdcFixture, type AdcFixture } from './adc-fixture.ts';

vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });

const BIN = adcBin();
const SKIP = adcSkipReason();
const TITLE = SKIP === null ? 'ADC (apisix-standalone backend)' : `ADC (apisix-standalone backend) skipped: ${SKIP}`;

let fx: AdcFixture;

if (SKIP !== null) console.warn(`${TITLE}`);

beforeAll(async () => {
  if (SKIP === null) fx = await startAdcFixture(BIN!);
});
afterAll(async () => {
  await fx?.close();
});

describe.skipIf(SKIP !== null)(TITLE, () => {
  describe('apisix-standalone backend (/apisix/admin/configs)', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startTestGateway({ config: NO_EXPORTER });
    });
    afterAll(async () => {
      await gw?.close();
    });

    it('sync replaces the configuration with a digest; dump, diff and validate agree; unchanged sync is a no-op', async () => {
      const file = await fx.writeDecl('adc-standalone.yaml', fx.declarative());
      const out = await fx.adc(gw, ['sync', '--backend', 'apisix-standalone', '-f', file]);
      expect(out.code, out.output).toBe(0);
      const head = await fetch(`${gw.adminUrl}/configs`, { method: 'HEAD', headers: { 'x-api-key': ADMIN_KEY } });
      const digest = head.headers.get('x-digest');
      expect(digest).toMatch(/^[0-9a-f]{40}$/);
      const configs = (await gw.admin('GET', '/configs')).body;
      expect(configs.routes).toHaveLength(4);
      expect(configs.routes_conf_version).toBeGreaterThan(0);
      await fx.servesDeclared(gw);

      expect(await fx.diff(gw, file, 'apisix-standalone')).toEqual([]);
      // Nothing to change: ADC may PUT the dump back (with a digest of its own JSON), but no collection's
      // conf_version moves, so the gateway keeps every collection as it was.
      const again = await fx.adc(gw, ['sync', '--backend', 'apisix-standalone', '-f', file]);
      expect(again.code, again.output).toBe(0);
      const after = (await gw.admin('GET', '/configs')).body;
      for (const coll of ['routes', 'services', 'upstreams', 'consumers', 'ssls', 'global_rules', 'plugin_metadata']) {
        expect(after[`${coll}_conf_version`]).toBe(configs[`${coll}_conf_version`]);
        expect(after[coll]).toEqual(configs[coll]);
      }

      const dumpFile = path.join(fx.dir, 'standalone-dump.yaml');
      const dumped = await fx.adc(gw, ['dump', '--backend', 'apisix-standalone', '-o', dumpFile]);
      expect(dumped.code, dumped.output).toBe(0);
      const dump = parse(await readFile(dumpFile, 'utf8')) as Record<string, any>;
      expect(dump.services.map((s: { name: string }) => s.name).sort()).toEqual(['catalog', 'orders']);
      expect(await fx.diff(gw, dumpFile, 'apisix-standalone', ['--exclude-resource-type', 'ssl'])).toEqual([]);

      // A change: one route fewer, a new digest, the data plane follows.
      const conf = fx.declarative();
      conf.services[0].routes = conf.services[0].routes.filter((r: { name: string }) => r.name !== 'health');
      const changed = await fx.adc(gw, ['sync', '--backend', 'apisix-standalone', '-f', await fx.writeDecl('adc-standalone-2.yaml', conf)]);
      expect(changed.code, changed.output).toBe(0);
      const head3 = await fetch(`${gw.adminUrl}/configs`, { method: 'HEAD', headers: { 'x-api-key': ADMIN_KEY } });
      expect(head3.headers.get('x-digest')).not.toBe(digest);
      expect((await gw.admin('GET', '/configs')).body.routes).toHaveLength(3);
      await gw.synced();
      expect((await fetchText(`${gw.url}/health`)).status).toBe(404);

      const conf2 = fx.declarative();
      conf2.services[1].routes[0].plugins['limit-count'] = { time_window: 60 };
      const bad = await fx.adc(gw, ['validate', '--backend', 'apisix-standalone', '-f', await fx.writeDecl('adc-standalone-bad.yaml', conf2)]);
      expect(bad.code).toBe(1);
      expect(bad.output).toContain('failed to check the configuration of plugin limit-count');
    });
  });
});
