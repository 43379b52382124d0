import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APISIX_DEFAULT_KEYRING,
  FieldCodec,
  fieldCodecFromConfig,
  lookupFromPluginDefs,
} from '../../src/config/encryption.ts';
import type { Json, JsonObject } from '../../src/config/resources.ts';
import { EtcdStore } from '../../src/config/store-etcd.ts';
import { FileStore } from '../../src/config/store-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

const K1 = APISIX_DEFAULT_KEYRING[0]!;
const K2 = APISIX_DEFAULT_KEYRING[1]!;
const K256 = '0123456789abcdef0123456789ABCDEF';

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 10_000, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
    child.stdin?.end(input ?? '');
  });
}

/** The reference ciphertext: openssl with the keyring entry as key and its first 16 bytes as IV. */
async function opensslEncrypt(key: string, plaintext: string): Promise<string> {
  const k = Buffer.from(key);
  const algo = k.length === 16 ? '-aes-128-cbc' : '-aes-256-cbc';
  const out = await run('openssl', ['enc', algo, '-K', k.toString('hex'), '-iv', k.subarray(0, 16).toString('hex'), '-base64', '-A'], plaintext);
  return out.trim();
}

async function opensslDecrypt(key: string, b64: string): Promise<string> {
  const k = Buffer.from(key);
  const algo = k.length === 16 ? '-aes-128-cbc' : '-aes-256-cbc';
  return await run('openssl', ['enc', '-d', algo, '-K', k.toString('hex'), '-iv', k.subarray(0, 16).toString('hex'), '-base64', '-A'], b64);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

function codec(keyring: readonly string[] = [K1, K2], encryptFields = true): FieldCodec {
  return new FieldCodec({ keyring, encryptFields });
}

function pluginConf(v: JsonObject, plugin: string): JsonObject {
  return (v.plugins as JsonObject)[plugin] as JsonObject;
}

let pem = '';

beforeAll(async () => {
  pem = await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
});

describe('FieldCodec ciphertext', () => {
  it('matches openssl AES-128-CBC (key = IV = the keyring entry) byte for byte, both ways', async () => {
    const c = codec();
    for (const plain of ['auth-one', 'a', '0123456789abcdef', 'ünïcødé secret with spaces', 'x'.repeat(100)]) {
      const ref = await opensslEncrypt(K1, plain);
      expect(c.encryptString(plain)).toBe(ref);
      expect(c.decryptString(ref)).toBe(plain);
      expect(await opensslDecrypt(K1, c.encryptString(plain))).toBe(plain);
    }
  });

  it('uses AES-256-CBC for a 32-byte entry (IV = its first 16 bytes)', async () => {
    const c = codec([K256]);
    const ref = await opensslEncrypt(K256, 'secret-256');
    expect(c.encryptString('secret-256')).toBe(ref);
    expect(c.decryptString(ref)).toBe('secret-256');
  });

  it('encrypts with the first entry and decrypts with any entry (rotation)', async () => {
    const c = codec([K1, K2]);
    const byK2 = await opensslEncrypt(K2, 'old-secret');
    expect(c.decryptString(byK2)).toBe('old-secret');
    expect(c.encryptString('old-secret')).toBe(await opensslEncrypt(K1, 'old-secret'));
    expect(codec([K2, K1]).decryptString(await opensslEncrypt(K1, 'x1'))).toBe('x1');
  });

  it('keeps values that do not decrypt: plaintext, bad base64, wrong length, foreign key', async () => {
    const c = codec([K1]);
    const foreign = await opensslEncrypt(K2, 'not-for-this-ring');
    for (const v of ['plain-key', '', 'not base64 at all!', 'YWJj', Buffer.alloc(20, 7).toString('base64'), foreign, '$secret://vault/1/jack/key']) {
      expect(c.decryptString(v)).toBe(v);
    }
  });

  it('rejects keyring entries of unusable length', () => {
    expect(() => codec(['short'])).toThrow(/16 bytes \(AES-128\) or 32 bytes/);
    expect(() => fieldCodecFromConfig({ data_encryption: { keyring: ['x'.repeat(24)] } })).toThrow(/keyring\[0\]/);
  });
});

describe('FieldCodec resources', () => {
  it('encrypts consumer and credential plugin fields (APISIX table) without mutating the input', () => {
    const c = codec();
    const consumer = deepFreeze({
      username: 'jack',
      plugins: {
        'key-auth': { key: 'auth-one' },
        'basic-auth': { username: 'jack', password: 'pw' },
        'jwt-auth': { key: 'k', secret: 's3cret' },
        'hmac-auth': { key_id: 'id', secret_key: 'sk' },
        'limit-count': { count: 1, time_window: 60, redis_password: 'rp' },
      },
    } as JsonObject);
    const enc = c.encode('consumers', consumer);
    expect(enc).not.toBe(consumer);
    expect(pluginConf(enc, 'key-auth').key).toBe(c.encryptString('auth-one'));
    expect(pluginConf(enc, 'basic-auth')).toEqual({ username: 'jack', password: c.encryptString('pw') });
    expect(pluginConf(enc, 'jwt-auth')).toEqual({ key: 'k', secret: c.encryptString('s3cret') });
    expect(pluginConf(enc, 'hmac-auth').secret_key).toBe(c.encryptString('sk'));
    // Consumer confs of plugins without a consumer schema use the plugin schema's fields.
    expect(pluginConf(enc, 'limit-count').redis_password).toBe(c.encryptString('rp'));
    expect(c.decode('consumers', enc)).toEqual(consumer);
    const cred = { plugins: { 'key-auth': { key: 'cred-key' } } };
    expect(pluginConf(c.encode('credentials', cred), 'key-auth').key).toBe(c.encryptString('cred-key'));
  });

  it('returns the input itself when nothing is secret', () => {
    const c = codec();
    const route = deepFreeze({ uri: '/x', plugins: { 'proxy-rewrite': { uri: '/y' } }, upstream: { nodes: { 'a:1': 1 } } } as JsonObject);
    expect(c.encode('routes', route)).toBe(route);
    expect(c.decode('routes', route)).toBe(route);
  });

  it('encrypts route-level plugin fields, nested "a.b" fields and plugin metadata', () => {
    const c = codec();
    const route = {
      uri: '/x',
      plugins: {
        csrf: { key: 'csrf-key' },
        'elasticsearch-logger': { endpoint_addr: 'http://es', field: { index: 'i' }, auth: { username: 'u', password: 'p' } },
        'key-auth': { header: 'apikey' },
      },
    };
    const enc = c.encode('routes', route);
    expect(pluginConf(enc, 'csrf').key).toBe(c.encryptString('csrf-key'));
    expect(pluginConf(enc, 'elasticsearch-logger').auth).toEqual({ username: 'u', password: c.encryptString('p') });
    expect(pluginConf(enc, 'key-auth')).toEqual({ header: 'apikey' });
    expect(c.decode('routes', enc)).toEqual(route);
    for (const kind of ['services', 'global_rules', 'plugin_configs', 'consumer_groups'] as const) {
      expect(pluginConf(c.encode(kind, route), 'csrf').key).toBe(c.encryptString('csrf-key'));
    }
    expect(c.encode('stream_routes', { plugins: { csrf: { key: 'k' } } })).toEqual({ plugins: { csrf: { key: 'k' } } });
    const meta = { clickhouse: { password: 'chp', user: 'u' } };
    const encMeta = c.encode('plugin_metadata', meta, 'error-log-logger');
    expect(encMeta).toEqual({ clickhouse: { password: c.encryptString('chp'), user: 'u' } });
    expect(c.decode('plugin_metadata', encMeta, 'error-log-logger')).toEqual(meta);
  });

  it('encrypts SSL keys and upstream client keys only when they are PEM', () => {
    const c = codec();
    const ssl = deepFreeze({ cert: 'CERT', key: pem, certs: ['C2', 'C3'], keys: [pem, '$secret://vault/1/k'], snis: ['a.test'] } as JsonObject);
    const enc = c.encode('ssls', ssl);
    expect(enc.key).toBe(c.encryptString(pem));
    expect(enc.keys).toEqual([c.encryptString(pem), '$secret://vault/1/k']);
    expect(enc.cert).toBe('CERT');
    expect(c.decode('ssls', enc)).toEqual(ssl);
    // A plaintext PEM stays as it is on read; an already encrypted key is not encrypted twice.
    expect(c.decode('ssls', ssl)).toBe(ssl);
    expect(c.encode('ssls', enc)).toBe(enc);

    const up = { nodes: { 'a:1': 1 }, tls: { client_cert: 'C', client_key: pem } };
    const encUp = c.encode('upstreams', up);
    expect((encUp.tls as JsonObject).client_key).toBe(c.encryptString(pem));
    expect(c.decode('upstreams', encUp)).toEqual(up);
    for (const kind of ['routes', 'services', 'stream_routes'] as const) {
      const v = c.encode(kind, { upstream: up as unknown as Json });
      expect(((v.upstream as JsonObject).tls as JsonObject).client_key).toBe(c.encryptString(pem));
    }
  });

  it('enable_encrypt_fields=false leaves plugin fields alone but still encrypts SSL keys', () => {
    const c = codec([K1], false);
    const consumer = { username: 'jack', plugins: { 'key-auth': { key: 'auth-one' } } };
    expect(c.encode('consumers', consumer)).toBe(consumer);
    expect(c.decode('consumers', { username: 'jack', plugins: { 'key-auth': { key: c.encryptString('x') } } })).toEqual({
      username: 'jack',
      plugins: { 'key-auth': { key: c.encryptString('x') } },
    });
    expect(c.encode('ssls', { key: pem }).key).toBe(new FieldCodec({ keyring: [K1], encryptFields: true }).encryptString(pem));
  });

  it('follows APISIX 3.18 paths: any depth, arrays on the way, maps of strings at the end', () => {
    const defs: Record<string, { encryptFields?: readonly string[] }> = {
      'my-logger': { encryptFields: ['headers', 'sinks.auth.token', 'tags'] },
    };
    const c = new FieldCodec({ keyring: [K1], encryptFields: true, lookup: lookupFromPluginDefs((n) => defs[n]) });
    const conf: JsonObject = {
      headers: { 'X-A': 'a', 'X-B': 'b', n: 1 },
      sinks: [{ auth: { token: 't1', user: 'u' } }, { auth: { token: 't2' } }, 'not-an-object'],
      tags: ['x', 2],
    };
    const route: JsonObject = { uri: '/x', plugins: { 'my-logger': conf } };
    const enc = pluginConf(c.encode('routes', route), 'my-logger');
    const e = (s: string) => c.encryptString(s);
    expect(enc).toEqual({
      headers: { 'X-A': e('a'), 'X-B': e('b'), n: 1 },
      sinks: [{ auth: { token: e('t1'), user: 'u' } }, { auth: { token: e('t2') } }, 'not-an-object'],
      tags: [e('x'), 2],
    });
    expect(c.decode('routes', c.encode('routes', route))).toEqual(route);
    expect((conf.headers as JsonObject)['X-A']).toBe('a'); // the input is never mutated
  });

  it('takes encrypt fields from plugin definitions first, then the APISIX table', () => {
    const defs: Record<string, { consumerSchema?: unknown; encryptFields?: readonly string[] }> = {
      'my-auth': { consumerSchema: {}, encryptFields: ['token'] },
      'my-logger': { encryptFields: ['api_key'] },
      'key-auth': { consumerSchema: {} },
    };
    const c = new FieldCodec({ keyring: [K1], encryptFields: true, lookup: lookupFromPluginDefs((n) => defs[n]) });
    const consumer = { plugins: { 'my-auth': { token: 't' }, 'my-logger': { api_key: 'a' }, 'key-auth': { key: 'k' } } };
    const enc = c.encode('consumers', consumer);
    expect(pluginConf(enc, 'my-auth').token).toBe(c.encryptString('t'));
    expect(pluginConf(enc, 'my-logger').api_key).toBe(c.encryptString('a'));
    expect(pluginConf(enc, 'key-auth').key).toBe(c.encryptString('k'));
    // An auth plugin's route conf has no encrypted field; a plugin without a consumer schema uses one list.
    const route = { plugins: { 'my-auth': { token: 't' }, 'my-logger': { api_key: 'a' } } };
    const encRoute = c.encode('routes', route);
    expect(pluginConf(encRoute, 'my-auth').token).toBe('t');
    expect(pluginConf(encRoute, 'my-logger').api_key).toBe(c.encryptString('a'));
  });

  it('builds from config.yaml with APISIX defaults', () => {
    const etcd = fieldCodecFromConfig(undefined);
    const consumer = { plugins: { 'key-auth': { key: 'auth-one' } } };
    expect(pluginConf(etcd.encode('consumers', consumer), 'key-auth').key).toBe(codec([K1]).encryptString('auth-one'));
    const off = fieldCodecFromConfig({ data_encryption: { enable_encrypt_fields: false, keyring: K256 } });
    expect(off.encode('consumers', consumer)).toBe(consumer);
    expect(off.encode('ssls', { key: pem }).key).toBe(codec([K256]).encryptString(pem));
    // Legacy apisix.ssl.key_encrypt_salt keys still decrypt SSL keys (and encrypt them without a keyring).
    const legacy = fieldCodecFromConfig({ data_encryption: { keyring: [] }, ssl: { key_encrypt_salt: K2 } });
    expect(legacy.decode('ssls', { key: codec([K2]).encryptString(pem) }).key).toBe(pem);
    expect(legacy.encode('ssls', { key: pem }).key).toBe(codec([K2]).encryptString(pem));
    expect(legacy.encode('consumers', consumer)).toBe(consumer);
    const none = new FieldCodec({ keyring: [], encryptFields: true });
    expect(none.active).toBe(false);
    expect(none.encode('ssls', { key: pem }).key).toBe(pem);
  });
});

describe('EtcdStore with a FieldCodec (real etcd)', () => {
  let etcd: EtcdPeer;
  const stores: EtcdStore[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
  }, 30_000);

  afterAll(async () => {
    for (const s of stores) await s.close();
    await etcd?.stop();
  });

  async function open(prefix: string): Promise<EtcdStore> {
    const s = new EtcdStore({
      hosts: [etcd.endpoint],
      prefix,
      timeoutSec: 3,
      logger: silentLogger,
      codec: fieldCodecFromConfig({}),
    });
    stores.push(s);
    await s.start();
    return s;
  }

  it('loads values APISIX encrypted, stores new ones encrypted, and follows a rotated key', async () => {
    const prefix = '/enc1';
    const apisixKey = await opensslEncrypt(K1, 'auth-one');
    const apisixPem = await opensslEncrypt(K1, pem);
    await etcd.etcdctl('put', `${prefix}/consumers/jack`, JSON.stringify({ username: 'jack', plugins: { 'key-auth': { key: apisixKey } } }));
    await etcd.etcdctl('put', `${prefix}/ssls/1`, JSON.stringify({ id: '1', cert: 'CERT', key: apisixPem, snis: ['a.test'] }));
    await etcd.etcdctl('put', `${prefix}/consumers/old`, JSON.stringify({ username: 'old', plugins: { 'key-auth': { key: 'plain-from-old-writer' } } }));

    const s = await open(prefix);
    expect(pluginConf(s.get('consumers', 'jack')!.value, 'key-auth').key).toBe('auth-one');
    expect(s.get('ssls', '1')!.value.key).toBe(pem);
    expect(pluginConf(s.get('consumers', 'old')!.value, 'key-auth').key).toBe('plain-from-old-writer');
    expect(pluginConf((await s.fetch('consumers', 'jack'))!.value, 'key-auth').key).toBe('auth-one');

    // A put lands encrypted in etcd; openssl decrypts it; the store's view holds the plaintext.
    const res = await s.put('consumers', 'rose', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
    expect(pluginConf(res.item.value, 'key-auth').key).toBe('rose-key');
    const raw = JSON.parse(await etcd.etcdctl('get', '--print-value-only', `${prefix}/consumers/rose`)) as JsonObject;
    const stored = pluginConf(raw, 'key-auth').key as string;
    expect(stored).toBe(apisixKeyFor('rose-key'));
    expect(await opensslDecrypt(K1, stored)).toBe('rose-key');
    await waitFor(() => s.get('consumers', 'rose') !== undefined, 10_000);
    expect(pluginConf(s.get('consumers', 'rose')!.value, 'key-auth').key).toBe('rose-key');

    await s.put('ssls', '2', { id: '2', cert: 'CERT', key: pem, snis: ['b.test'] });
    const rawSsl = JSON.parse(await etcd.etcdctl('get', '--print-value-only', `${prefix}/ssls/2`)) as JsonObject;
    expect(rawSsl.key).not.toContain('BEGIN');
    expect(await opensslDecrypt(K1, rawSsl.key as string)).toBe(pem);

    // A value encrypted with the second keyring entry (written before a rotation) arrives through the watch.
    await etcd.etcdctl('put', `${prefix}/consumers/jack`, JSON.stringify({ username: 'jack', plugins: { 'key-auth': { key: await opensslEncrypt(K2, 'rotated') } } }));
    await waitFor(() => pluginConf(s.get('consumers', 'jack')!.value, 'key-auth').key === 'rotated', 10_000);

    const deleted = await s.delete('consumers', 'jack');
    expect(pluginConf(deleted!.value, 'key-auth').key).toBe('rotated');
  }, 30_000);

  function apisixKeyFor(plain: string): string {
    return codec([K1]).encryptString(plain);
  }
});

describe('FileStore with a FieldCodec (opt-in)', () => {
  it('writes secret fields encrypted and loads them decrypted', async () => {
    const tmp = await tempDir('swy-enc-');
    try {
      const file = path.join(tmp.dir, 'apisix.json');
      const encPem = await opensslEncrypt(K1, pem);
      await writeFile(file, JSON.stringify({ ssls: [{ id: '1', cert: 'CERT', key: encPem, snis: ['a.test'] }] }));
      const c = fieldCodecFromConfig({});
      const s = new FileStore({ path: file, logger: silentLogger, writable: true, pollMs: 60_000, codec: c });
      await s.start();
      try {
        expect(s.get('ssls', '1')!.value.key).toBe(pem);
        await s.put('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: 'auth-one' } } });
        expect(pluginConf(s.get('consumers', 'jack')!.value, 'key-auth').key).toBe('auth-one');
        const text = await readFile(file, 'utf8');
        expect(text).not.toContain('auth-one');
        expect(text).toContain(c.encryptString('auth-one'));
        expect(text).not.toContain('BEGIN PRIVATE KEY');
      } finally {
        await s.close();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
