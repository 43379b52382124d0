// A generated data-encryption keyring for the writable standalone file.
//
// The Admin API persists consumers (key-auth keys, basic-auth passwords, jwt secrets, hmac secret keys) and
// SSL private keys to apisix.yaml. APISIX encrypts those fields for etcd only, and with a default keyring
// published in its source, which would only obfuscate a file. So when config.yaml sets no
// apisix.data_encryption.keyring and the Admin API writes the standalone file, a random AES-256 key (32
// characters) is written into config.yaml, the way the admin key is generated: apisix.yaml on its own (a
// backup, a commit, a support bundle) then no longer reveals the secrets. The key must travel with any copy
// of the file that another gateway should read; losing it means re-keying the consumers.
//
// Not generated when the key could not be saved (a read-only config.yaml): a key for one run would leave the
// file undecryptable after a restart, and cluster workers (which re-read config.yaml) could not decrypt it.
import { randomInt } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isMap, parseDocument } from 'yaml';
import type { LocalConfig } from './local.ts';
import { configProvider } from './local.ts';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** `generated`: a key was saved into config.yaml; otherwise `reason` says why not. */
export interface KeyringResult {
  generated: boolean;
  reason?: string;
}

/** 32 characters from 62 (about 190 bits): an AES-256 key as APISIX reads keyring entries (their UTF-8 bytes). */
export function randomKeyringEntry(): string {
  let s = '';
  for (let i = 0; i < 32; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

interface DataEncryption {
  enable_encrypt_fields?: boolean;
  keyring?: unknown;
}

/** Whether this configuration has the Admin API writing the standalone file without a configured keyring. */
export function needsGeneratedKeyring(conf: LocalConfig): boolean {
  const d = conf.deployment;
  if (d.role !== 'traditional' || configProvider(conf) !== 'yaml' || !conf.apisix.enable_admin) return false;
  const de = (conf.apisix as { data_encryption?: DataEncryption }).data_encryption;
  return de?.keyring === undefined;
}

/**
 * Generates and saves `apisix.data_encryption.keyring` in `file` (config.yaml) when needsGeneratedKeyring;
 * on success `conf` carries the key too. Comments and layout of config.yaml are kept; the write is atomic
 * and owner-only. The key itself is never printed or logged.
 */
export async function ensureDataKeyring(file: string, conf: LocalConfig): Promise<KeyringResult> {
  if (!needsGeneratedKeyring(conf)) return { generated: false, reason: 'not needed' };
  const key = randomKeyringEntry();
  const tmp = `${file}.${process.pid}.keyring.tmp`;
  try {
    const doc = parseDocument(await readFile(file, 'utf8'));
    if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message);
    if (!isMap(doc.getIn(['apisix'], true))) doc.setIn(['apisix'], doc.createNode({}));
    if (!isMap(doc.getIn(['apisix', 'data_encryption'], true))) doc.setIn(['apisix', 'data_encryption'], doc.createNode({}));
    doc.setIn(['apisix', 'data_encryption', 'keyring'], doc.createNode([key]));
    await writeFile(tmp, doc.toString(), { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    return { generated: false, reason: `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  const a = conf.apisix as { data_encryption?: DataEncryption };
  a.data_encryption = { ...a.data_encryption, keyring: [key] };
  return { generated: true };
}
