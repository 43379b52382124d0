// Credential ids through the Admin API on the writable standalone store: APISIX answers `value.id` as the id in
// the URL (t/admin/credentials.t: "id":"credential_a"), while the standalone file keeps credentials inside
// `consumers` with `id: <username>/credentials/<id>`. A client that sends the answered id back in a URL (ADC
// deletes `/consumers/<u>/credentials/<value.id>`) must reach the same credential.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/config/store-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../helpers/proc.ts';
import { startAdmin, type AdminHarness } from './harness.ts';

let h: AdminHarness;
let store: FileStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const tmp = await tempDir('swy-cred-file-');
  cleanup = tmp.cleanup;
  store = new FileStore({ path: `${tmp.dir}/apisix.yaml`, logger: silentLogger, writable: true });
  await store.start();
  h = await startAdmin({ store });
});
afterAll(async () => {
  await h.close();
  await store.close();
  await cleanup();
});

describe('credentials on the writable standalone store', () => {
  it('answer the URL id in PUT, GET and list; the configs dump keeps the standalone form', async () => {
    expect((await h.api('PUT', '/apisix/admin/consumers/jack', { body: { username: 'jack' } })).status).toBe(201);
    const put = await h.api('PUT', '/apisix/admin/consumers/jack/credentials/credential_a', {
      body: { desc: 'key-auth for jack', plugins: { 'key-auth': { key: 'the-key' } } },
    });
    expect(put.status).toBe(201);
    expect([put.json.key, put.json.value.id]).toEqual(['/apisix/consumers/jack/credentials/credential_a', 'credential_a']);
    const one = await h.api('GET', '/apisix/admin/consumers/jack/credentials/credential_a');
    expect(one.json.value.id).toBe('credential_a');
    const list = await h.api('GET', '/apisix/admin/consumers/jack/credentials');
    expect(list.json.list.map((n: { value: { id: string } }) => n.value.id)).toEqual(['credential_a']);

    const dump = await h.api('GET', '/apisix/admin/configs');
    const ids = dump.json.consumers.map((c: { id?: string; username?: string }) => c.id ?? c.username);
    expect(ids).toEqual(['jack', 'jack/credentials/credential_a']);

    const del = await h.api('DELETE', `/apisix/admin/consumers/jack/credentials/${list.json.list[0].value.id}`);
    expect(del.json).toEqual({ deleted: '1', key: '/apisix/consumers/jack/credentials/credential_a' });
    expect((await h.api('GET', '/apisix/admin/consumers/jack/credentials')).json.total).toBe(0);
  });
});
