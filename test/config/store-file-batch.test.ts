// Group commit in the writable FileStore: concurrent writes share one file write and one change batch, each
// write is still checked on its own (a CAS conflict fails alone), a failed file write fails the whole batch
// and leaves the view as it was, and the file always equals a full render of the view.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStandalone } from '../../src/config/standalone-format.ts';
import type { ConfigEvent } from '../../src/config/store.ts';
import { FileStore } from '../../src/config/store-file.ts';
import { isSwitchyardError } from '../../src/errors.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../helpers/proc.ts';

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-batch-'));
});
afterAll(async () => {
  await cleanup();
});

async function open(): Promise<{ s: FileStore; file: string; batches: ConfigEvent[][] }> {
  const d = path.join(dir, `b${++n}`);
  await mkdir(d);
  const file = path.join(d, 'apisix.yaml');
  const s = new FileStore({ path: file, logger: silentLogger, writable: true, pollMs: 60_000 });
  const batches: ConfigEvent[][] = [];
  s.on('change', (evs: ConfigEvent[]) => batches.push(evs));
  await s.start();
  return { s, file, batches };
}

const route = (i: number) => ({ uri: `/r/${i}`, upstream: { nodes: { '127.0.0.1:80': 1 } } });

describe('FileStore group commit', () => {
  it('commits concurrent writes in few batches, each with its own revision, file equal to the view', async () => {
    const { s, file, batches } = await open();
    try {
      const N = 200;
      const t = performance.now();
      const results = await Promise.all(Array.from({ length: N }, (_, i) => s.put('routes', String(i), route(i))));
      const ms = performance.now() - t;
      console.log(`${N} concurrent puts: ${batches.length} file writes, ${(N / (ms / 1000)).toFixed(0)} writes/s`);
      expect(batches.length).toBeLessThan(N / 4);
      expect(batches.flat()).toHaveLength(N);
      const revs = results.map((r) => r.item.modifiedIndex);
      expect(new Set(revs).size).toBe(N);
      expect(Math.max(...revs)).toBe(s.revision);
      expect(results.every((r) => r.created)).toBe(true);
      expect(await readFile(file, 'utf8')).toBe(renderStandalone(s.all(), 'yaml'));
    } finally {
      await s.close();
    }
  });

  it('checks each write against the earlier writes of its batch: a CAS conflict fails alone', async () => {
    const { s } = await open();
    try {
      const first = await s.put('routes', 'a', route(1));
      const idx = first.item.modifiedIndex;
      const [p1, p2, p3, d1, dp] = await Promise.allSettled([
        s.put('routes', 'a', route(2), { expectModifiedIndex: idx }),
        s.put('routes', 'a', route(3), { expectModifiedIndex: idx }), // same base: loses to p1
        s.put('credentials', 'jack/credentials/c1', { id: 'c1' }),
        s.delete('routes', 'a'),
        s.deletePrefix('credentials', 'jack/credentials'),
      ]);
      expect(p1.status).toBe('fulfilled');
      expect(p2.status).toBe('rejected');
      expect(isSwitchyardError((p2 as PromiseRejectedResult).reason, 'SWY_ERR_STORE_CONFLICT')).toBe(true);
      expect(p3.status).toBe('fulfilled');
      expect((d1 as PromiseFulfilledResult<unknown>).value).toBeDefined();
      // The credential put earlier in the same batch is seen by the prefix delete.
      expect((dp as PromiseFulfilledResult<number>).value).toBe(1);
      expect(s.get('routes', 'a')).toBeUndefined();
      expect(s.list('credentials')).toHaveLength(0);
    } finally {
      await s.close();
    }
  });

  it('a failed file write fails every write of the batch and changes nothing', async () => {
    const { s, file, batches } = await open();
    try {
      await s.put('routes', 'keep', route(0));
      const rev = s.revision;
      const before = batches.length;
      // A non-empty directory in the file's place: the atomic rename fails.
      await rm(file);
      await mkdir(file);
      await writeFile(path.join(file, 'x'), 'x');
      const settled = await Promise.allSettled([s.put('routes', 'n1', route(1)), s.put('routes', 'n2', route(2)), s.delete('routes', 'keep')]);
      for (const r of settled) {
        expect(r.status).toBe('rejected');
        expect(isSwitchyardError((r as PromiseRejectedResult).reason, 'SWY_ERR_STORE_UNAVAILABLE')).toBe(true);
      }
      expect(s.revision).toBe(rev);
      expect(batches.length).toBe(before);
      expect(s.get('routes', 'keep')).toBeDefined();
      expect(s.get('routes', 'n1')).toBeUndefined();
      // Writable again once the file can be replaced.
      await rm(file, { recursive: true });
      await s.put('routes', 'n3', route(3));
      expect((await readFile(file, 'utf8')).includes('/r/3')).toBe(true);
    } finally {
      await s.close();
    }
  });
});
