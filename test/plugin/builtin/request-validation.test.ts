import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeArgs, requestValidationPlugin as def } from '../../../src/plugin/builtin/request-validation.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { curl } from '../../helpers/curl.ts';
import { confError } from '../helpers.ts';

/** An upstream that answers with the exact body it received (what got through the gateway). */
interface BodyUpstream {
  addr: string;
  bodies: string[];
  close(): Promise<void>;
}

async function startBodyUpstream(): Promise<BodyUpstream> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push(body);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`upstream got: ${body}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const bodySchema = {
  type: 'object',
  required: ['required_payload'],
  properties: {
    required_payload: { type: 'string' },
    boolean_payload: { type: 'boolean' },
    with_default: { type: 'string', default: 'filled' },
  },
};

describe('request-validation', () => {
  let gw: TestGateway;
  let up: BodyUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startBodyUpstream();
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/body', plugins: { 'request-validation': { body_schema: bodySchema } }, upstream });
    await gw.put('/routes/2', {
      uri: '/headers',
      plugins: {
        'request-validation': {
          header_schema: {
            type: 'object',
            required: ['User-Agent', 'Host'],
            properties: { 'User-Agent': { type: 'string', pattern: '^curl/' }, Host: { type: 'string', enum: ['good.test'] } },
          },
        },
      },
      upstream,
    });
    await gw.put('/routes/3', {
      uri: '/custom',
      plugins: { 'request-validation': { body_schema: bodySchema, rejected_code: 403, rejected_msg: 'customize reject message', max_req_body_size: 64 } },
      upstream,
    });
    await gw.put('/routes/4', {
      uri: '/form',
      plugins: {
        'request-validation': {
          body_schema: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 2 }, tag: { type: 'array' } } },
        },
      },
      upstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates confs like APISIX, including the user schemas themselves', async () => {
    expect(confError(def, { body_schema: bodySchema })).toBeNull();
    expect(confError(def, {})).toMatch(/object matches none of the required/);
    expect(confError(def, { body_schema: { type: 'test' } })).toMatch(/invalid body_schema/);
    expect(confError(def, { header_schema: { type: 'object' }, rejected_code: 600 })).not.toBeNull();
    expect(confError(def, { header_schema: { type: 'object' }, rejected_msg: '' })).not.toBeNull();
    const r = await gw.admin('PUT', '/routes/9', { uri: '/r9', plugins: { 'request-validation': { body_schema: { type: 'test' } } }, upstream: { nodes: { [up.addr]: 1 } } });
    expect(r.status).toBe(400);
  });

  it('JSON body: failures answer 400 with the validator message and never reach the upstream', async () => {
    const before = up.bodies.length;
    let r = await curl(`${gw.url}/body`, ['-X', 'POST', '-H', 'content-type: application/json', '-d', '{"boolean_payload":true}']);
    expect(r.status).toBe(400);
    expect(r.body).toBe('property "required_payload" is required');
    r = await curl(`${gw.url}/body`, ['-X', 'POST', '-H', 'content-type: application/json', '-d', '{"required_payload":1}']);
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/^property "required_payload" validation failed: wrong type: expected string, got number/);
    r = await curl(`${gw.url}/body`, ['-X', 'POST', '-H', 'content-type: application/json', '-d', '{not json']);
    expect(r.status).toBe(400);
    // No body at all: rejected_code without a message (nginx's page).
    const empty = await fetch(`${gw.url}/body`, { method: 'POST' });
    expect(empty.status).toBe(400);
    expect(empty.headers.get('content-type')).toMatch(/text\/html/);
    expect(up.bodies.length).toBe(before);
  });

  it('curl -d without a JSON content type is read as a form, as APISIX does', async () => {
    const r = await curl(`${gw.url}/body`, ['-X', 'POST', '-d', '{"required_payload":"a"}']);
    expect(r.status).toBe(400);
    expect(r.body).toBe('property "required_payload" is required');
  });

  it('JSON body that passes reaches the upstream re-encoded, defaults filled, duplicate keys resolved', async () => {
    const r = await curl(`${gw.url}/body`, ['-X', 'POST', '-H', 'content-type: application/json', '-d', '{"required_payload":"a","required_payload":"b"}']);
    expect(r.status).toBe(200);
    const got = JSON.parse(r.body.replace(/^upstream got: /, ''));
    expect(got).toEqual({ required_payload: 'b', with_default: 'filled' });
  });

  it('header_schema: names are case-insensitive as in nginx; the documented messages', async () => {
    let r = await curl(`${gw.url}/headers`, ['-H', 'Host: good.test']);
    expect(r.status).toBe(200);
    r = await curl(`${gw.url}/headers`, ['-H', 'Host: bad.test']);
    expect(r.status).toBe(400);
    // APISIX's docs print "enum value"; the project's shared message formatter (src/schema/errors.ts) says "values".
    expect(r.body).toMatch(/^property "Host" validation failed: matches none of the enum value/);
    r = await curl(`${gw.url}/headers`, ['-H', 'Host: good.test', '-A', 'cli-mock']);
    expect(r.status).toBe(400);
    expect(r.body).toBe('property "User-Agent" validation failed: failed to match pattern "^curl/" with "cli-mock"');
    r = await curl(`${gw.url}/headers`, ['-H', 'Host: good.test', '-A', '']);
    expect(r.status).toBe(400);
    expect(r.body).toBe('property "User-Agent" is required');
  });

  it('rejected_code / rejected_msg replace the answer; max_req_body_size bounds the body', async () => {
    let r = await curl(`${gw.url}/custom`, ['-X', 'POST', '-d', '{}']);
    expect(r.status).toBe(403);
    expect(r.body).toBe('customize reject message');
    r = await curl(`${gw.url}/custom`, ['-X', 'POST', '-d', JSON.stringify({ required_payload: 'x'.repeat(100) })]);
    expect(r.status).toBe(403);
    expect(r.body).toBe('customize reject message');
    r = await curl(`${gw.url}/custom`, ['-X', 'POST', '-H', 'content-type: application/json', '-d', '{"required_payload":"ok"}']);
    expect(r.status).toBe(200);
  });

  it('urlencoded bodies are decoded as ngx.decode_args and passed on unchanged', async () => {
    let r = await curl(`${gw.url}/form`, ['-X', 'POST', '--data-raw', 'name=Jo+e&tag=a&tag=b']);
    expect(r.status).toBe(200);
    expect(r.body).toBe('upstream got: name=Jo+e&tag=a&tag=b');
    r = await curl(`${gw.url}/form`, ['-X', 'POST', '--data-raw', 'name=J']);
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/^property "name" validation failed/);
    r = await curl(`${gw.url}/form`, ['-X', 'POST', '--data-raw', 'name=Joe&tag=one']);
    expect(r.status).toBe(400);
    expect(r.body).toMatch(/^property "tag" validation failed: wrong type: expected array, got string/);
    expect(decodeArgs('a=1&b&a=%20x&=z&&c=')).toEqual({ a: ['1', ' x'], b: true, c: '' });
    // Client keys are own properties: a repeated __proto__ neither swaps the result's prototype nor reads it.
    const hostile = decodeArgs('__proto__=a&__proto__=b&constructor=c');
    expect(Object.getPrototypeOf(hostile)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(hostile, '__proto__')?.value).toEqual(['a', 'b']);
    expect(Object.getOwnPropertyDescriptor(hostile, 'constructor')?.value).toBe('c');
  });
});
