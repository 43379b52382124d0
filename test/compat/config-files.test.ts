// APISIX's own files load: conf/config.yaml.example (every key accepted, the ones without effect reported as
// warnings, never as errors) and every standalone example of docs/en/latest/deployment-modes.md (objects
// without ids numbered as APISIX does). Fixtures are copied from APISIX; see fixtures/README.md.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseLocalConfig } from '../../src/config/local.ts';
import { parseStandalone } from '../../src/config/standalone-format.ts';
import { validateStandaloneFile } from '../../src/config/validate-standalone.ts';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const DM = path.join(FIX, 'deployment-modes');
const read = (f: string) => readFileSync(f, 'utf8');

describe('config.yaml', () => {
  it("loads APISIX's config.yaml.example with warnings naming each key without effect", () => {
    const r = parseLocalConfig(read(path.join(FIX, 'config.yaml.example')));
    if (!r.ok) throw new Error(r.errors.join('\n'));
    // The 7 keys the issue names are accepted; the ones with no effect are reported, not rejected.
    expect(r.config.apisix.node_listen).toEqual([9080]);
    const w = r.warnings.join('\n');
    expect(w).toMatch(/^apisix\.worker_startup_time_threshold: accepted for APISIX compatibility but not implemented/m);
    expect(w).toMatch(/^apisix\.max_post_args_readable_size: /m);
    expect(w).toMatch(/^nginx_config: .*not implemented: error_log, /m);
    // Keys whose APISIX value is what Switchyard does anyway stay quiet.
    expect(w).not.toMatch(/enable_reuseport|match_uri_encoded_slash|enable_resolv_search_opt|disable_sync_configuration_during_start/);
    // nginx_config values Switchyard honours are mapped (worker_shutdown_timeout: 240s).
    expect(r.config.switchyard.limits.graceful_shutdown_timeout).toBe(240);
    expect(r.config.switchyard.limits.keepalive_timeout).toBe(60);
  });

  it('accepts a bare node_listen port; enable_dev_mode means one worker; explicit switchyard keys win', () => {
    const r = parseLocalConfig('apisix:\n  node_listen: 9081\n  enable_dev_mode: true\nnginx_config:\n  worker_processes: 4\n  http:\n    client_max_body_size: 8m\n');
    if (!r.ok) throw new Error(r.errors.join('\n'));
    expect(r.config.apisix.node_listen).toEqual([9081]);
    expect(r.config.switchyard.worker_processes).toBe(1);
    expect(r.config.switchyard.limits.client_max_body_size).toBe(8 * 1024 * 1024);
    const r2 = parseLocalConfig('nginx_config:\n  worker_processes: 4\nswitchyard:\n  worker_processes: 2\n');
    if (!r2.ok) throw new Error(r2.errors.join('\n'));
    expect(r2.config.switchyard.worker_processes).toBe(2);
  });

  it('reports discovery types: unknown ones are errors, APISIX ones without an implementation are warnings', () => {
    const bad = parseLocalConfig('discovery:\n  zookeeper: {}\n');
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.errors).toEqual(['discovery.zookeeper: unknown discovery type (APISIX has dns, consul, consul_kv, eureka, nacos, kubernetes, tars)']);
    const nacos = parseLocalConfig('discovery:\n  dns: {servers: ["127.0.0.1:53"]}\n  nacos: {host: ["http://127.0.0.1:8848"]}\n');
    if (!nacos.ok) throw new Error(nacos.errors.join('\n'));
    expect(nacos.warnings).toEqual([
      'discovery.nacos: APISIX discovery type not implemented (only dns is); upstreams with discovery_type: nacos are rejected',
    ]);
  });

  it('still rejects unknown keys and bad types', () => {
    const r = parseLocalConfig('apisix:\n  node_listen: "9080"\n  enable_dev_mod: true\n');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toContain('apisix.enable_dev_mod: unknown key');
      expect(r.errors.some((e) => e.startsWith('apisix.node_listen: must be integer or array'))).toBe(true);
    }
  });

  for (const f of readdirSync(DM).filter((n) => n.startsWith('config-'))) {
    it(`loads deployment-modes ${f}`, () => {
      const r = parseLocalConfig(read(path.join(DM, f)));
      expect(r.ok ? [] : r.errors).toEqual([]);
    });
  }
});

describe('standalone files of the deployment-modes documentation', () => {
  const base = parseLocalConfig('');
  if (!base.ok) throw new Error('empty config invalid');
  // Plugins the examples use that Switchyard does not implement (the file itself is valid).
  const missingPlugins = /unknown plugin \[http-logger\]/;
  // The YAML SSL example's certificate differs from the JSON one in one character (line 9: MA0GA1UE for
  // MA8GA1UE), so it does not parse; APISIX's ssl.validate refuses it the same way.
  const expected: Record<string, string[]> = {
    'standalone-26-L721.yaml': ['/apisix/ssls/arr_1: failed to parse cert: PEM_read_bio_X509_AUX() failed'],
  };
  for (const f of readdirSync(DM).filter((n) => n.startsWith('standalone-'))) {
    it(`validates ${f}`, () => {
      process.env.UPSTREAM_ADDR = '127.0.0.1:1980';
      const errors = validateStandaloneFile(read(path.join(DM, f)), f, base.config).filter((e) => !missingPlugins.test(e));
      expect(errors).toEqual(expected[f] ?? []);
    });
  }

  it('numbers objects without id arr_<position> and sets the id on the value, as APISIX', () => {
    const r = parseStandalone(read(path.join(DM, 'standalone-14-L419.yaml')), 'apisix.yaml');
    if (!r.ok) throw new Error(r.error);
    expect(r.items.map((i) => [i.kind, i.id, i.value.id, i.value.uri])).toEqual([
      ['routes', 'arr_1', 'arr_1', '/hello'],
      ['routes', 'arr_2', 'arr_2', '/hello2'],
    ]);
    const mixed = parseStandalone('upstreams:\n  - id: 7\n    nodes: {"127.0.0.1:1": 1}\n  - nodes: {"127.0.0.1:2": 1}\n#END\n', 'apisix.yaml');
    if (!mixed.ok) throw new Error(mixed.error);
    expect(mixed.items.map((i) => i.id)).toEqual(['7', 'arr_2']);
  });
});
