// config.yaml loading in-process: error merging for oneOf keys, defaults, and ensureAdminKey's edge cases.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureAdminKey, loadLocalConfig, parseLocalConfig } from '../../src/config/local.ts';
import { tempDir } from '../helpers/proc.ts';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-local-'));
});
afterAll(async () => {
  await cleanup();
});

describe('parseLocalConfig', () => {
  it('applies defaults to an empty file', () => {
    const r = parseLocalConfig('');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.apisix.node_listen).toEqual([9080]);
    expect(r.config.deployment.admin.admin_listen).toEqual({ ip: '127.0.0.1', port: 9180 });
    expect(r.config.deployment.admin.admin_key).toEqual([]);
    expect(r.config.switchyard.limits.graceful_shutdown_timeout).toBe(30);
  });

  it('reports a oneOf key once, with the failing branch when the value has the right type', () => {
    const r = parseLocalConfig(['apisix:', '  node_listen: [true, {port: 0}, {ip: x}]', 'switchyard:', '  worker_processes: many', ''].join('\n'));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toContain('apisix.node_listen[0]: must be integer or object');
    expect(r.errors).toContain('apisix.node_listen[1].port: must be >= 1');
    expect(r.errors).toContain('apisix.node_listen[2].port: is required');
    expect(r.errors.find((e) => e.startsWith('switchyard.worker_processes'))).toBe('switchyard.worker_processes: must be "auto" or integer');
    expect(r.errors.filter((e) => e.startsWith('apisix.node_listen[1]'))).toHaveLength(1);
  });
});

describe('ensureAdminKey', () => {
  async function load(name: string, text: string) {
    const f = path.join(dir, name);
    await writeFile(f, text);
    const r = await loadLocalConfig(f);
    if (!r.ok) throw new Error(r.errors.join('; '));
    return { f, conf: r.config };
  }

  it('fills every empty key and adds one when none is configured', async () => {
    const a = await load('a.yaml', 'deployment:\n  admin:\n    admin_key:\n      - {name: admin, key: "", role: admin}\n      - {name: viewer, key: "", role: viewer}\n');
    const ga = await ensureAdminKey(a.f, a.conf);
    expect(ga.every((k) => k.saved)).toBe(true);
    expect(ga.map((k) => k.name)).toEqual(['admin', 'viewer']);
    const keys = (parse(await readFile(a.f, 'utf8')) as any).deployment.admin.admin_key;
    expect(keys.map((k: { key: string }) => k.key)).toEqual(ga.map((k) => k.key));
    expect(a.conf.deployment.admin.admin_key.every((k) => k.key.length === 32)).toBe(true);

    const b = await load('b.yaml', '# only a comment\napisix:\n  node_listen: [9080]\n');
    const gb = await ensureAdminKey(b.f, b.conf);
    const text = await readFile(b.f, 'utf8');
    expect(text).toContain('# only a comment');
    expect((parse(text) as any).deployment.admin.admin_key).toEqual([{ name: 'admin', key: gb[0]!.key, role: 'admin' }]);
    expect((await loadLocalConfig(b.f)).ok).toBe(true);
    expect(await ensureAdminKey(b.f, (await load('b.yaml', text)).conf)).toEqual([]);
  });

  it('does not replace an environment reference, and does nothing when keys are not required or on a data plane', async () => {
    delete process.env.SWY_TEST_ADMIN_KEY;
    const src = 'deployment:\n  admin:\n    admin_key:\n      - {name: admin, key: "${{SWY_TEST_ADMIN_KEY:=}}", role: admin}\n';
    const e = await load('e.yaml', src);
    const ge = await ensureAdminKey(e.f, e.conf);
    expect(ge.map((k) => k.saved)).toEqual([false]);
    expect(e.conf.deployment.admin.admin_key[0]!.key).toHaveLength(32);
    expect(await readFile(e.f, 'utf8')).toBe(src);

    const n = await load('n.yaml', 'deployment:\n  admin:\n    admin_key_required: false\n');
    expect(await ensureAdminKey(n.f, n.conf)).toEqual([]);
    const d = await load('d.yaml', 'deployment:\n  role: data_plane\n');
    expect(await ensureAdminKey(d.f, d.conf)).toEqual([]);
  });
});
