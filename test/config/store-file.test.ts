import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseStandalone, renderStandalone } from '../../src/config/standalone-format.ts';
import type { ConfigEvent } from '../../src/config/store.ts';
import { FileStore } from '../../src/config/store-file.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

let dir: string;
let cleanup: () => Promise<void>;
const stores: FileStore[] = [];
let n = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-file-'));
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

afterAll(async () => {
  await cleanup();
});

function fileName(ext = 'yaml'): string {
  return path.join(dir, `f${++n}`, `apisix.${ext}`);
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.edit`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

function capture(): { logger: pino.Logger; lines: () => { msg: string; error?: string }[] } {
  const out: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void out.push(s) });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as { msg: string; error?: string }) };
}

async function open(file: string, opts: { writable?: boolean; logger?: pino.Logger } = {}): Promise<FileStore> {
  const s = new FileStore({ path: file, writable: opts.writable ?? false, pollMs: 100, logger: opts.logger ?? silentLogger });
  stores.push(s);
  await s.start();
  return s;
}

function record(s: FileStore): { events: string[]; batches: number; resyncs: number } {
  const r = { events: [] as string[], batches: 0, resyncs: 0 };
  s.on('change', (evs: ConfigEvent[]) => {
    r.batches++;
    for (const e of evs) r.events.push(`${e.type}:${e.kind}/${e.id}`);
  });
  s.on('resync', () => r.resyncs++);
  return r;
}

const SAMPLE = `routes:
  - id: 1
    uri: /hello
    upstream_id: u1
  - id: r2
    uri: /world
    upstream:
      nodes:
        "127.0.0.1:1980": 1
upstreams:
  - id: u1
    nodes:
      - host: \${{SWY_TEST_UPSTREAM_HOST}}
        port: \${{SWY_TEST_UPSTREAM_PORT:=1980}}
        weight: 1
consumers:
  - username: jack
  - id: jack/credentials/k1
    plugins:
      key-auth:
        key: secret
plugin_metadata:
  - id: http-logger
    log_format:
      host: "$host"
secrets:
  - id: vault/1
    uri: http://127.0.0.1:8200
routes_conf_version: 7
#END
`;

async function mkfile(text: string, ext = 'yaml'): Promise<string> {
  const file = fileName(ext);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(path.dirname(file), { recursive: true });
  if (text !== '') await writeFile(file, text);
  return file;
}

describe('standalone format', () => {
  it('round-trips items through render and parse', () => {
    const parsed = parseStandalone(SAMPLE.replace(/\$\{\{[^}]*\}\}/g, '1'), 'apisix.yaml');
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    const items = parsed.items.map((it, i) => ({ ...it, key: `/apisix/x/${i}`, createdIndex: 1, modifiedIndex: 1 }));
    for (const format of ['yaml', 'json'] as const) {
      const text = renderStandalone(items, format, { genId: 42n });
      const again = parseStandalone(text, `apisix.${format}`);
      expect(again).toMatchObject({ ok: true, genId: 42n });
      if (again.ok) expect(again.items).toEqual(parsed.items);
    }
    expect(renderStandalone([], 'yaml')).toMatch(/#END\n$/);
  });

  it('reports precise errors', () => {
    const bad = (text: string, name = 'apisix.yaml') => {
      const r = parseStandalone(text, name);
      return r.ok ? '' : r.error;
    };
    expect(bad('routes:\n  - id: 1\n    uri: [\n#END\n')).toMatch(/^apisix\.yaml:\d+:\d+: /);
    expect(bad('routes:\n  - id: 1\n')).toMatch(/#END/);
    expect(bad('routes:\n  - id: 1\n  - id: "1"\n#END')).toMatch(/routes\[1\] \(line 3\): duplicate route id "1" \(first at routes\[0\] \(line 2\)\)/);
    expect(bad('routes:\n  - id: true\n    uri: /a\n#END')).toMatch(/routes\[0\] \(line 2\) has no valid "id"/);
    expect(bad('consumers:\n  - plugins: {}\n#END')).toMatch(/consumers\[0\] \(line 2\) has no valid "username"/);
    expect(bad('secrets:\n  - id: plain\n#END')).toMatch(/invalid secret id "plain"/);
    expect(bad('routes: {}\n#END')).toMatch(/"routes" must be an array/);
    expect(bad('routes: ${{SWY_TEST_MISSING_VAR}}\n#END')).toMatch(/SWY_TEST_MISSING_VAR/);
    expect(bad('{"routes": [}', 'apisix.json')).toMatch(/^apisix\.json: /);
    expect(parseStandalone('{"routes":[{"id":1}]}', 'apisix.json').ok).toBe(true);
  });
});

describe('FileStore', () => {
  it('loads the standalone file with env substitution', async () => {
    process.env.SWY_TEST_UPSTREAM_HOST = '10.0.0.7';
    const s = await open(await mkfile(SAMPLE));
    expect(s.ready).toBe(true);
    expect(s.backend).toBe('file');
    expect(s.list('routes').map((i) => i.id)).toEqual(['1', 'r2']);
    expect(s.get('routes', '1')).toMatchObject({ key: '/apisix/routes/1', value: { id: 1, uri: '/hello' } });
    expect(s.get('upstreams', 'u1')!.value.nodes).toEqual([{ host: '10.0.0.7', port: 1980, weight: 1 }]);
    expect(s.get('consumers', 'jack')).toBeDefined();
    expect(s.get('credentials', 'jack/credentials/k1')!.key).toBe('/apisix/consumers/jack/credentials/k1');
    expect(s.get('plugin_metadata', 'http-logger')).toBeDefined();
    expect(s.get('secrets', 'vault/1')).toBeDefined();
    expect(await s.fetch('routes', 'r2')).toBe(s.get('routes', 'r2'));
    expect(await s.fetchList('routes')).toHaveLength(2);
    await expect(s.put('routes', 'x', {})).rejects.toSatisfy((e) => isSwitchyardError(e, 'SWY_ERR_STORE_READONLY'));
    await expect(s.nextId()).rejects.toSatisfy((e) => isSwitchyardError(e, 'SWY_ERR_STORE_READONLY'));
  });

  it('rejects start() on an invalid file or a missing env var, with the precise error', async () => {
    delete process.env.SWY_TEST_UPSTREAM_HOST;
    await expect(open(await mkfile(SAMPLE))).rejects.toThrow(/SWY_TEST_UPSTREAM_HOST/);
    await expect(open(await mkfile('routes:\n  - id: 1\n'))).rejects.toThrow(/#END/);
    await expect(open(await mkfile('routes:\n  - id: 1\n    uri: [\n#END\n'))).rejects.toSatisfy(
      (e) => isSwitchyardError(e, 'SWY_ERR_CONFIG_INVALID') && /apisix\.yaml:\d+:\d+/.test((e as Error).message),
    );
  });

  it('hot reloads: only differences are emitted, unchanged items keep their identity', async () => {
    const file = await mkfile('routes:\n  - id: a\n    uri: /a\n  - id: b\n    uri: /b\n  - id: c\n    uri: /c\n#END\n');
    const s = await open(file);
    const rec = record(s);
    const a = s.get('routes', 'a')!;
    const b = s.get('routes', 'b')!;
    const rev0 = s.revision;
    await writeAtomic(file, 'routes:\n  - id: a\n    uri: /a\n  - id: b\n    uri: /b2\n  - id: d\n    uri: /d\n#END\n');
    await waitFor(() => rec.resyncs === 1, 10_000);
    expect(rec.events.sort()).toEqual(['delete:routes/c', 'put:routes/b', 'put:routes/d']);
    expect(rec.batches).toBe(1);
    expect(s.get('routes', 'a')).toBe(a);
    const b2 = s.get('routes', 'b')!;
    expect(b2.value.uri).toBe('/b2');
    expect(b2.createdIndex).toBe(b.createdIndex);
    expect(b2.modifiedIndex).toBe(s.revision);
    expect(s.revision).toBeGreaterThan(rev0);
  });

  it('applies a yaml file only once it ends with #END; an invalid file keeps the last good view', async () => {
    const file = await mkfile('routes:\n  - id: a\n    uri: /a\n#END\n');
    const cap = capture();
    const s = await open(file, { logger: cap.logger });
    const rec = record(s);
    // A partial write (no marker yet), written in place.
    await writeFile(file, 'routes:\n  - id: a\n    uri: /partial\n');
    await waitFor(() => cap.lines().some((l) => /#END/.test(l.error ?? '')), 10_000);
    expect(s.get('routes', 'a')!.value.uri).toBe('/a');
    await writeFile(file, 'routes:\n  - id: a\n    uri: /partial\n#END');
    await waitFor(() => s.get('routes', 'a')!.value.uri === '/partial', 10_000);

    await writeAtomic(file, 'routes:\n  - id: a\n    uri: [\n#END\n');
    await waitFor(() => cap.lines().some((l) => /apisix\.yaml:\d+:\d+: /.test(l.error ?? '')), 10_000);
    await writeAtomic(file, 'routes:\n  - id: a\n  - id: a\n#END\n');
    await waitFor(() => cap.lines().some((l) => /duplicate route id "a"/.test(l.error ?? '')), 10_000);
    expect(s.get('routes', 'a')!.value.uri).toBe('/partial');
    expect(rec.resyncs).toBe(1);
    // In-place writes may also be seen half-written; each distinct bad content is logged once.
    const errors = cap.lines().filter((l) => l.msg.includes('invalid file'));
    expect(errors.length).toBeGreaterThanOrEqual(3);
    expect(new Set(errors.map((l) => l.error)).size).toBe(errors.length);

    await writeAtomic(file, 'routes:\n  - id: a\n    uri: /fixed\n#END\n');
    await waitFor(() => s.get('routes', 'a')!.value.uri === '/fixed', 10_000);
  });

  it('reads apisix.json without a marker', async () => {
    const file = await mkfile('{"routes":[{"id":"j","uri":"/j"}],"upstreams":[]}', 'json');
    const s = await open(file);
    expect(s.get('routes', 'j')!.value.uri).toBe('/j');
    await writeAtomic(file, '{"routes":[{"id":"j","uri":"/j2"}]}');
    await waitFor(() => s.get('routes', 'j')!.value.uri === '/j2', 10_000);
  });

  it('starts empty on a missing file and picks it up when it appears', async () => {
    const file = await mkfile('');
    const s = await open(file);
    expect(s.all()).toEqual([]);
    await writeAtomic(file, 'services:\n  - id: s1\n#END\n');
    await waitFor(() => s.get('services', 's1'), 10_000);
  });

  it('writable: persists atomically, survives a new store, does not re-apply its own writes', async () => {
    const file = await mkfile('');
    const s = await open(file, { writable: true });
    expect(await readFile(file, 'utf8')).toMatch(/#END\n$/);
    const rec = record(s);
    const id = await s.nextId();
    expect(id).toMatch(/^\d{20}$/);
    const r = await s.put('routes', id, { uri: '/gen' });
    expect(r.created).toBe(true);
    expect(r.item.value).toEqual({ id, uri: '/gen' });
    await s.put('consumers', 'jack', { plugins: {} });
    await s.put('credentials', 'jack/credentials/c1', { plugins: { 'key-auth': { key: 'k' } } });
    await s.put('credentials', 'jack/credentials/c2', { plugins: {} });
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.put('upstreams', `u${i}`, { nodes: { [`127.0.0.1:${1000 + i}`]: 1 } })));
    const upd = await s.put('upstreams', 'u0', { nodes: {} });
    expect(upd.created).toBe(false);
    expect(await s.deletePrefix('credentials', 'jack')).toBe(1 + 1);
    expect(await s.delete('upstreams', 'u19')).toMatchObject({ id: 'u19' });
    expect(await s.delete('upstreams', 'u19')).toBeUndefined();
    expect(rec.events.filter((e) => e.startsWith('put:upstreams/'))).toHaveLength(21);

    // Our own writes are never reloaded as foreign changes.
    const before = rec.batches;
    await new Promise((r) => setTimeout(r, 400));
    expect(rec.resyncs).toBe(0);
    expect(rec.batches).toBe(before);
    expect((await readdir(path.dirname(file))).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/#END\n$/);
    const s2 = await open(file);
    const values = (st: FileStore) => st.all().map((i) => [i.key, i.value]).sort((x, y) => String(x[0]).localeCompare(String(y[0])));
    expect(values(s2)).toEqual(values(s));
    expect(s2.list('upstreams')).toHaveLength(19);
    expect(s2.get('consumers', 'jack')!.value).toEqual({ username: 'jack', plugins: {} });

    await s.close();
    const s3 = await open(file, { writable: true });
    const id2 = await s3.nextId();
    expect(BigInt(id2)).toBeGreaterThan(BigInt(id));
  });

  it('writable: compare-and-swap and ttl expiry', async () => {
    const file = await mkfile('routes:\n  - id: "1"\n    uri: /one\n#END\n');
    const s = await open(file, { writable: true });
    const one = s.get('routes', '1')!;
    await expect(s.put('routes', '1', { uri: '/x' }, { expectModifiedIndex: 0 })).rejects.toSatisfy((e) =>
      isSwitchyardError(e, 'SWY_ERR_STORE_CONFLICT'),
    );
    await expect(s.put('routes', '1', { uri: '/x' }, { expectModifiedIndex: one.modifiedIndex + 5 })).rejects.toSatisfy((e) =>
      isSwitchyardError(e, 'SWY_ERR_STORE_CONFLICT'),
    );
    const ok = await s.put('routes', '1', { uri: '/x' }, { expectModifiedIndex: one.modifiedIndex });
    expect(ok.item.createdIndex).toBe(one.createdIndex);
    expect(ok.item.modifiedIndex).toBeGreaterThan(one.modifiedIndex);
    expect((await s.put('routes', 'new', {}, { expectModifiedIndex: 0 })).created).toBe(true);

    const rec = record(s);
    await s.put('routes', 'tmp', { uri: '/tmp' }, { ttl: 0.3 });
    await s.put('routes', 'kept', { uri: '/kept' }, { ttl: 0.3 });
    await s.put('routes', 'kept', { uri: '/kept' });
    await waitFor(() => !s.get('routes', 'tmp'), 10_000);
    expect(rec.events).toContain('delete:routes/tmp');
    expect(await readFile(file, 'utf8')).not.toContain('/tmp');
    await new Promise((r) => setTimeout(r, 400));
    expect(s.get('routes', 'kept')).toBeDefined();
  });

  it('writable: a foreign edit is applied, then later writes keep it', async () => {
    const file = await mkfile('routes:\n  - id: a\n#END\n');
    const s = await open(file, { writable: true });
    await writeAtomic(file, 'routes:\n  - id: a\n  - id: b\n#END\n');
    await waitFor(() => s.get('routes', 'b'), 10_000);
    await s.put('routes', 'c', {});
    const again = parseStandalone(await readFile(file, 'utf8'), file);
    expect(again.ok && again.items.map((i) => i.id)).toEqual(['a', 'b', 'c']);
  });
});
