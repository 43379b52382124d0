// Listener edges on the file backend: auth sources and roles, allow_admin, CORS, body limits, bad JSON.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/config/store-file.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { tempDir } from '../helpers/proc.ts';
import { ADMIN_KEY, startAdmin, UPSTREAM, VIEWER_KEY, type AdminHarness } from './harness.ts';

let store: FileStore;
let h: AdminHarness;
let cleanup: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  const tmp = await tempDir('swy-admin-srv-');
  cleanup = tmp.cleanup;
  store = new FileStore({ path: `${tmp.dir}/apisix.yaml`, logger: silentLogger, writable: true });
  await store.start();
  h = await startAdmin({ store });
});

afterAll(async () => {
  await h?.close();
  await store?.close();
  await cleanup();
});

/** Sends raw bytes and returns the raw response text (bounded by a timeout). */
function rawHttp(port: number, payload: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(out);
    }, 5000);
    sock.on('data', (d) => (out += d.toString()));
    sock.on('error', (err) => {
      clearTimeout(timer);
      if (out) resolve(out);
      else reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.write(payload);
  });
}

describe('auth', () => {
  it('reads the key from header, api_key query and cookie', async () => {
    expect((await h.api('GET', '/apisix/admin/routes')).status).toBe(200);
    expect((await h.api('GET', `/apisix/admin/routes?api_key=${ADMIN_KEY}`, { key: null })).status).toBe(200);
    const cookie = await h.api('GET', '/apisix/admin/routes', { key: null, headers: { Cookie: `a=b; X-API-KEY=${ADMIN_KEY}` } });
    expect(cookie.status).toBe(200);
  });

  it('answers 401 with APISIX descriptions', async () => {
    const missing = await h.api('GET', '/apisix/admin/routes', { key: null });
    expect(missing.status).toBe(401);
    expect(missing.json).toEqual({ error_msg: 'failed to check token', description: 'missing apikey' });
    expect(missing.headers.get('x-api-version')).toBe('v3');
    const wrong = await h.api('GET', '/apisix/admin/routes', { key: 'nope' });
    expect(wrong.json).toEqual({ error_msg: 'failed to check token', description: 'wrong apikey' });
    const viewerWrite = await h.api('PUT', '/apisix/admin/routes/v', { key: VIEWER_KEY, body: { uri: '/v', upstream: UPSTREAM } });
    expect(viewerWrite.status).toBe(401);
    expect(viewerWrite.json.description).toBe('invalid method for role viewer');
    expect((await h.api('GET', '/apisix/admin/routes/v')).status).toBe(404);
    expect((await h.api('GET', '/apisix/admin/routes', { key: VIEWER_KEY })).status).toBe(200);
  });

  it('skips the check when admin_key_required is false or no key is configured', async () => {
    for (const conf of [{ admin_key_required: false }, { admin_key: [] }]) {
      const open = await startAdmin({ store, conf });
      try {
        expect((await open.api('GET', '/apisix/admin/routes', { key: null })).status).toBe(200);
      } finally {
        await open.close();
      }
    }
  });

  it('refuses clients outside allow_admin with 403', async () => {
    const closed = await startAdmin({ store, conf: { allow_admin: ['10.0.0.0/8', '::2/128'] } });
    try {
      const r = await closed.api('GET', '/apisix/admin/routes');
      expect(r.status).toBe(403);
      expect(r.json).toEqual({ error_msg: 'access denied' });
    } finally {
      await closed.close();
    }
    const open = await startAdmin({ store, conf: { allow_admin: [] } });
    try {
      expect((await open.api('GET', '/apisix/admin/routes')).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});

describe('http edges', () => {
  it('sends CORS headers and answers OPTIONS when enabled', async () => {
    const cors = await startAdmin({ store, conf: { enable_admin_cors: true } });
    try {
      const pre = await cors.api('OPTIONS', '/apisix/admin/routes', { key: null });
      expect(pre.status).toBe(200);
      expect(pre.headers.get('access-control-allow-origin')).toBe('*');
      expect(pre.headers.get('access-control-allow-methods')).toContain('PATCH');
      const get = await cors.api('GET', '/apisix/admin/routes');
      expect(get.headers.get('access-control-max-age')).toBe('3600');
      expect(get.headers.get('access-control-allow-credentials')).toBe('true');
    } finally {
      await cors.close();
    }
    expect((await h.api('GET', '/apisix/admin/routes')).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers bad JSON with 400 and a truncated echo', async () => {
    const r = await h.api('PUT', '/apisix/admin/routes/j', { rawBody: '{"uri": ' + 'x'.repeat(2000) });
    expect(r.status).toBe(400);
    expect(r.json.error_msg).toMatch(/^invalid request body: /);
    expect(typeof r.json.req_body).toBe('string');
    expect(r.json.req_body.length).toBeLessThan(600);
  });

  it('answers bodies over 1.5 MiB with APISIX\'s 400 and writes nothing', async () => {
    const big = JSON.stringify({ uri: '/big', desc: 'x'.repeat(1024 * 1024 * 2), upstream: UPSTREAM });
    const declared = await rawHttp(
      h.port,
      `PUT /apisix/admin/routes/big HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`,
    );
    expect(declared).toMatch(/^HTTP\/1\.1 400/);
    expect(declared).toContain(`"error_msg":"invalid request body: request size ${big.length} is greater than the maximum size 1572864 allowed"`);
    const chunked = await rawHttp(
      h.port,
      Buffer.concat([
        Buffer.from(`PUT /apisix/admin/routes/big HTTP/1.1\r\nHost: x\r\nX-API-KEY: ${ADMIN_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n`),
        Buffer.from(`${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`),
      ]),
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 400/);
    expect((await h.api('GET', '/apisix/admin/routes/big')).status).toBe(404);
  });

  it('answers paths outside the prefix and HEAD', async () => {
    expect((await h.api('GET', '/other')).status).toBe(404);
    const head = await h.api('HEAD', '/apisix/admin', { key: null });
    expect(head.status).toBe(200);
    expect(head.headers.get('server')).toBe('APISIX/3.13.0');
    expect(head.headers.get('x-switchyard-version')).toBe('0.1.0');
  });

  it('writes through the file backend', async () => {
    const r = await h.api('PUT', '/apisix/admin/routes/f', { body: { uri: '/f', upstream: UPSTREAM } });
    expect(r.status, r.text).toBe(201);
    expect(store.get('routes', 'f')?.value.uri).toBe('/f');
    const p = await h.api('PATCH', '/apisix/admin/routes/f', { body: { uri: '/g' } });
    expect(p.json.value.uri).toBe('/g');
    expect((await h.api('DELETE', '/apisix/admin/routes/f')).json).toEqual({ deleted: '1', key: '/apisix/routes/f' });
  });
});
