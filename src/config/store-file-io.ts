// File-level I/O of the standalone store (store-file.ts): the signature that tells a foreign change from our
// own last write, a size-bounded read, and the atomic replace every write goes through.
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { SwitchyardError } from '../errors.ts';

/** What identifies one version of the file without reading it: a rename (our writes) changes ino. */
export interface FileSig {
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
}

/** The file's signature, or null when it does not exist. */
export async function fileSig(file: string): Promise<FileSig | null> {
  try {
    const s = await stat(file, { bigint: true });
    return { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function sameSig(a: FileSig | null, b: FileSig): boolean {
  return a !== null && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

/** Reads the file whose signature is `sig`; a file over `maxBytes` is refused before reading it. */
export async function readBounded(file: string, sig: FileSig, maxBytes: number): Promise<string> {
  if (sig.size > BigInt(maxBytes)) {
    throw new SwitchyardError('SWY_ERR_CONFIG_INVALID', `${file} is larger than ${maxBytes} bytes`);
  }
  return await readFile(file, 'utf8');
}

/**
 * Replaces `file` with `text` atomically: a temp file in the same directory, fsync, rename, fsync of the
 * directory. `existing` says whether the file is there to keep the mode of; a new file may hold private keys,
 * so it is owner-only. Returns the new file's signature (the temp file's identity survives the rename, so a
 * foreign write after it shows up as a change).
 */
export async function writeAtomic(file: string, text: string, existing: boolean): Promise<FileSig> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const mode = existing ? Number((await stat(file).catch(() => null))?.mode ?? 0o600) & 0o777 : 0o600;
    let sig: FileSig;
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(text, 'utf8');
      await fh.sync();
      const st = await fh.stat({ bigint: true });
      sig = { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs };
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return sig;
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new SwitchyardError('SWY_ERR_STORE_UNAVAILABLE', `writing ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
}
