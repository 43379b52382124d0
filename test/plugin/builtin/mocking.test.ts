import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { genObject, mockingPlugin as def, toXml } from '../../../src/plugin/builtin/mocking.ts';
import { VERSION } from '../../../src/version.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', example: 'jack' },
    age: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' } },
    nested: { type: 'object', properties: { ok: { type: 'boolean', example: true } } },
  },
};

describe('mocking', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', {
      uri: '/example',
      plugins: { mocking: { response_example: '{"addr":"$remote_addr"}', response_status: 201, response_headers: { 'X-Mocked': 'yes' } } },
      upstream,
    });
    await gw.put('/routes/2', { uri: '/schema', plugins: { mocking: { response_schema: schema } }, upstream });
    await gw.put('/routes/3', {
      uri: '/xml',
      plugins: { mocking: { response_schema: schema, content_type: 'application/xml', with_mock_header: false } },
      upstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates like APISIX', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { response_example: 'x', content_type: 'image/png' })).toMatch(/unsupported content type!$/);
    expect(confError(def, { response_example: 'x', response_status: 0 })).not.toBeNull();
    expect(confError(def, { response_schema: schema, content_type: 'text/xml; charset=utf-8' })).toBeNull();
  });

  it('answers the example with status, headers and x-mock-by', async () => {
    const r = await fetch(`${gw.url}/example`);
    expect(r.status).toBe(201);
    expect(r.headers.get('content-type')).toBe('application/json;charset=utf8');
    expect(r.headers.get('x-mock-by')).toBe(`Switchyard/${VERSION}`);
    expect(r.headers.get('x-mocked')).toBe('yes');
    expect(await r.json()).toEqual({ addr: '127.0.0.1' });
    expect(up.seen.length).toBe(0);
  });

  it('generates JSON from response_schema', async () => {
    const r = await fetch(`${gw.url}/schema`);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { name: string; age: number; tags: string[]; nested: { ok: boolean } };
    expect(body.name).toBe('jack');
    expect(Number.isInteger(body.age)).toBe(true);
    expect(body.tags.length).toBeGreaterThanOrEqual(1);
    expect(body.tags.length).toBeLessThanOrEqual(3);
    expect(body.nested).toEqual({ ok: true });
  });

  it('generates XML for xml content types', async () => {
    const r = await fetch(`${gw.url}/xml`);
    expect(r.headers.get('x-mock-by')).toBeNull();
    const text = await r.text();
    expect(text.startsWith('<data>')).toBe(true);
    expect(text).toContain('<name>jack</name>');
    expect(text).toContain('<nested><ok>true</ok></nested>');
  });

  it('bounds generation of deeply nested schemas and escapes XML', () => {
    let s: Record<string, unknown> = { type: 'object', properties: {} };
    const root = s;
    for (let i = 0; i < 100; i++) {
      const child = { type: 'object', properties: {} };
      (s.properties as Record<string, unknown>).c = child;
      s = child;
    }
    expect(() => JSON.stringify(genObject(root as never))).not.toThrow();
    expect(toXml({ a: '<&>' })).toBe('<data><a>&#60;&#38;&#62;</a></data>');
  });
});
