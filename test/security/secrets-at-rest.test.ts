// Issue 20 item 7: consumer secrets must not sit in plaintext in the standalone file the Admin API writes.
// The file store encrypts plugin encrypt_fields and SSL keys with the data_encryption keyring, decrypts on
// load, keeps hand-written plaintext readable, and the CLI generates a private keyring for the yaml provider.
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldCodecFromConfig, fileStoreCodecFromConfig, type FieldCodec } from '../../src/config/encryption.ts';
import { ensureDataKeyring, needsGeneratedKeyring } from '../../src/config/keyring.ts';
import { parseLocalConfig } from '../../src/config/local.ts';
import type { JsonObject } from '../../src/config/resources.ts';
import { FileStore } from '../../src/config/store-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { tempDir } from '../helpers/proc.ts';

const KEY = 'Zq8Vd3kP0wLx7NcR2tYb5HmJ9sFa4GeU'; // 32 bytes: AES-256
const SECRETS = ['jack-key-auth-secret', 'rose-basic-password', 'jwt-hs256-secret-value', 'hmac-secret-key-value'];

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-atrest-'));
});
afterAll(async () => {
  await cleanup();
});

async function fileIn(name = 'apisix.yaml'): Promise<string> {
  const d = path.join(dir, `s${++n}`);
  await mkdir(d);
  return path.join(d, name);
}

async function open(file: string, codec: FieldCodec | undefined, logger = silentLogger): Promise<FileStore> {
  const s = new FileStore({ path: file, logger, writable: true, pollMs: 60_000, codec });
  await s.start();
  return s;
}

function conf(v: JsonObject, name: string): JsonObject {
  return (v.plugins as JsonObject)[name] as JsonObject;
}

function opensslDecrypt(key: string, b64: string): Promise<string> {
  const k = Buffer.from(key);
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['enc', '-d', '-aes-256-cbc', '-K', k.toString('hex'), '-iv', k.subarray(0, 16).toString('hex'), '-base64', '-A'],
      { timeout: 10_000 },
      (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
    );
    child.stdin?.end(b64);
  });
}

async function writeConsumers(s: FileStore): Promise<void> {
  await Promise.all([
    s.put('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: SECRETS[0]! } } }),
    s.put('consumers', 'rose', { username: 'rose', plugins: { 'basic-auth': { username: 'rose', password: SECRETS[1]! } } }),
    s.put('credentials', 'jack/credentials/j1', { id: 'j1', plugins: { 'jwt-auth': { key: 'jack-jwt', secret: SECRETS[2]! } } }),
    s.put('credentials', 'jack/credentials/h1', { id: 'h1', plugins: { 'hmac-auth': { key_id: 'jack-hmac', secret_key: SECRETS[3]! } } }),
  ]);
}

describe('standalone file encryption at rest', () => {
  it('writes encrypt_fields encrypted (openssl decrypts them), loads them decrypted after a restart', async () => {
    const file = await fileIn();
    const codec = fieldCodecFromConfig({ data_encryption: { keyring: [KEY] } });
    let s = await open(file, codec);
    await writeConsumers(s);
    await s.close();
    const text = await readFile(file, 'utf8');
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    // Identifiers stay readable (key_id, jwt key, usernames): only the secret fields are encrypted.
    expect(text).toContain('jack-hmac');
    const stored = /key: (\S+)/.exec(text.slice(text.indexOf('key-auth')))![1]!;
    expect(await opensslDecrypt(KEY, stored)).toBe(SECRETS[0]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    s = await open(file, codec);
    try {
      expect(conf(s.get('consumers', 'jack')!.value, 'key-auth').key).toBe(SECRETS[0]);
      expect(conf(s.get('consumers', 'rose')!.value, 'basic-auth').password).toBe(SECRETS[1]);
      expect(conf(s.get('credentials', 'jack/credentials/j1')!.value, 'jwt-auth').secret).toBe(SECRETS[2]);
      expect(conf(s.get('credentials', 'jack/credentials/h1')!.value, 'hmac-auth').secret_key).toBe(SECRETS[3]);
    } finally {
      await s.close();
    }
  });

  it('reads a file written by hand in plaintext, and encrypts it on the next Admin API write', async () => {
    const file = await fileIn();
    await writeFile(file, `consumers:\n  - username: hand\n    plugins:\n      key-auth:\n        key: hand-written-plain-key\n#END\n`);
    const s = await open(file, fieldCodecFromConfig({ data_encryption: { keyring: [KEY] } }));
    try {
      expect(conf(s.get('consumers', 'hand')!.value, 'key-auth').key).toBe('hand-written-plain-key');
      await s.put('routes', '1', { uri: '/x', upstream: { nodes: { '127.0.0.1:1': 1 } } });
      const text = await readFile(file, 'utf8');
      expect(text).not.toContain('hand-written-plain-key');
      expect(text).toContain('username: hand');
    } finally {
      await s.close();
    }
  });

  it('enable_encrypt_fields=false keeps plugin fields in plaintext (APISIX); a wrong keyring keeps ciphertext', async () => {
    const file = await fileIn();
    let s = await open(file, fieldCodecFromConfig({ data_encryption: { enable_encrypt_fields: false, keyring: [KEY] } }));
    await s.put('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: SECRETS[0]! } } });
    await s.close();
    expect(await readFile(file, 'utf8')).toContain(SECRETS[0]);

    const file2 = await fileIn();
    s = await open(file2, fieldCodecFromConfig({ data_encryption: { keyring: [KEY] } }));
    await s.put('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: SECRETS[0]! } } });
    await s.close();
    s = await open(file2, fieldCodecFromConfig({ data_encryption: { keyring: ['0123456789abcdef'] } }));
    try {
      const v = conf(s.get('consumers', 'jack')!.value, 'key-auth').key;
      expect(v).not.toBe(SECRETS[0]);
      expect(v).toMatch(/^[A-Za-z0-9+/]+=*$/);
    } finally {
      await s.close();
    }
  });

  it('loads a file written under the default keyring after a keyring was generated, and re-encrypts it', async () => {
    const file = await fileIn();
    let s = await open(file, fileStoreCodecFromConfig({}));
    await s.put('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: SECRETS[0]! } } });
    await s.close();
    const oldText = await readFile(file, 'utf8');
    expect(oldText).not.toContain(SECRETS[0]);
    s = await open(file, fileStoreCodecFromConfig({ data_encryption: { keyring: [KEY] } }));
    try {
      expect(conf(s.get('consumers', 'jack')!.value, 'key-auth').key).toBe(SECRETS[0]);
      await s.put('routes', '1', { uri: '/x', upstream: { nodes: { '127.0.0.1:1': 1 } } });
      const text = await readFile(file, 'utf8');
      const stored = /key: (\S+)/.exec(text.slice(text.indexOf('key-auth')))![1]!;
      expect(await opensslDecrypt(KEY, stored)).toBe(SECRETS[0]);
    } finally {
      await s.close();
    }
  });

  it("warns when the writable file would be encrypted with APISIX's public default keyring", async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const s = await open(await fileIn(), fieldCodecFromConfig({}), logger);
    await s.close();
    expect(lines.some((l) => l.includes('published default keyring'))).toBe(true);
    lines.length = 0;
    const t = await open(await fileIn(), fieldCodecFromConfig({ data_encryption: { keyring: [KEY] } }), logger);
    await t.close();
    expect(lines.some((l) => l.includes('published default keyring'))).toBe(false);
  });
});

describe('generated keyring (ensureDataKeyring)', () => {
  const base = (extra = '') =>
    `# my gateway\napisix:\n  node_listen: 9080 # port\n${extra}deployment:\n  role: traditional\n  role_traditional:\n    config_provider: yaml\n  admin:\n    admin_key:\n      - name: admin\n        key: abcdefghijklmnopqrstuvwxyz012345\n        role: admin\n`;

  function parse(text: string) {
    const r = parseLocalConfig(text);
    if (!r.ok) throw new Error(r.errors.join('; '));
    return r.config;
  }

  it('writes a random AES-256 key into config.yaml (comments kept, owner-only) and into the loaded config', async () => {
    const file = path.join(path.dirname(await fileIn()), 'config.yaml');
    await writeFile(file, base(), { mode: 0o644 });
    const c = parse(base());
    expect(needsGeneratedKeyring(c)).toBe(true);
    const r = await ensureDataKeyring(file, c);
    expect(r).toEqual({ generated: true });
    const text = await readFile(file, 'utf8');
    expect(text).toContain('# my gateway');
    expect(text).toContain('# port');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const reread = parse(text);
    const keyring = (reread.apisix as { data_encryption?: { keyring?: string[] } }).data_encryption?.keyring;
    expect(keyring).toHaveLength(1);
    expect(keyring![0]).toMatch(/^[A-Za-z0-9]{32}$/);
    expect((c.apisix as { data_encryption?: { keyring?: string[] } }).data_encryption?.keyring).toEqual(keyring);
    // The store codec built from it encrypts with the generated key, not a public one.
    expect(fieldCodecFromConfig(reread.apisix).publicKeyring).toBe(false);
    expect(needsGeneratedKeyring(reread)).toBe(false);
    // Another run generates another key.
    const other = path.join(path.dirname(file), 'config2.yaml');
    await writeFile(other, base());
    await ensureDataKeyring(other, parse(base()));
    expect(await readFile(other, 'utf8')).not.toContain(keyring![0]);
  });

  it('leaves a configured keyring, etcd and data planes alone; reports a config.yaml it cannot write', async () => {
    expect(needsGeneratedKeyring(parse(base('  data_encryption:\n    keyring: [0123456789abcdef]\n')))).toBe(false);
    expect(needsGeneratedKeyring(parse(base().replace('config_provider: yaml', 'config_provider: etcd')))).toBe(false);
    expect(needsGeneratedKeyring(parse(base().replace('role: traditional', 'role: data_plane')))).toBe(false);
    const c = parse(base());
    const missing = path.join(dir, 'no-such-dir', 'config.yaml');
    const r = await ensureDataKeyring(missing, c);
    expect(r.generated).toBe(false);
    expect(r.reason).toMatch(/ENOENT/);
    expect((c.apisix as { data_encryption?: unknown }).data_encryption).toBeUndefined();
  });
});

describe('through the gateway (Admin API -> apisix.yaml)', () => {
  it('consumer keys written through the Admin API are not in the file in plaintext', async () => {
    const gw = await startTestGateway({ config: { apisix: { data_encryption: { keyring: [KEY] } } } });
    try {
      await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: SECRETS[0] } } });
      const text = await readFile(path.join(gw.dir, 'apisix.yaml'), 'utf8');
      expect(text).toContain('username: jack');
      expect(text).not.toContain(SECRETS[0]);
    } finally {
      await gw.close();
    }
  });
});
