// grpc-transcode driven by curl, an independent HTTP client (the issue's "curl GET/POST with JSON gets the expected
// JSON"): GET with query args, POST JSON with an int64 beyond 2^53 compared as exact text, each type case
// (nested, repeated, map, enum, oneof, bytes, well-known types), and a google.rpc.Status error with decoded
// details (show_status_in_body + status_detail_type), against the real @grpc/grpc-js server of server.ts.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl, type CurlResult } from '../helpers/curl.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { PROTO_FILE, startGreeter, type GreeterServer } from './server.ts';

let gw: TestGateway;
let up: GreeterServer;

beforeAll(async () => {
  [gw, up] = await Promise.all([startTestGateway(), startGreeter()]);
  const upstream = { scheme: 'grpc', nodes: { [up.addr]: 1 } };
  await gw.put('/protos/hello', { content: readFileSync(PROTO_FILE, 'utf8') });
  const route = (id: string, conf: Record<string, unknown>) =>
    gw.put(`/routes/${id}`, { uri: `/${id}`, plugins: { 'grpc-transcode': { proto_id: 'hello', service: 'helloworld.Greeter', ...conf } }, upstream });
  await route('hello', { method: 'SayHello' });
  await route('plus', { method: 'Plus' });
  await route('echo', { method: 'Echo', pb_option: ['no_default_values'] });
  await route('err', { method: 'GetErrResp', show_status_in_body: true, status_detail_type: 'helloworld.ErrorDetail' });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

const json = ['-H', 'content-type: application/json'];

/**
 * A successful transcoded answer is chunked with grpc-status / grpc-message trailers, which `curl -i` prints
 * after the body: split them off (and check them).
 */
function bodyOf(r: CurlResult): string {
  const m = /((?:grpc-[a-z-]+:[^\r\n]*\r\n)+)$/.exec(r.body);
  expect(m?.[1]).toMatch(/^grpc-status: 0\r\n/);
  return r.body.slice(0, m!.index);
}

describe('grpc-transcode with curl', () => {
  it('GET: query args (repeated, enum by name, dotted nested message) -> JSON', async () => {
    const r = await curl(`${gw.url}/hello?name=curl&items=a&items=b&gender=GENDER_MALE&person.name=Ann&person.age=3`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toEqual(['application/json']);
    expect(bodyOf(r)).toBe('{"message":"Hello curl, name: Ann, age: 3","items":["a","b"],"gender":"GENDER_MALE"}');
  });

  it('POST JSON: int64 past 2^53 keeps every digit, in and out', async () => {
    const r = await curl(`${gw.url}/plus`, [...json, '--data-binary', '{"a":9007199254740993,"b":1000000000000000000}']);
    expect(r.status).toBe(200);
    expect(bodyOf(r)).toBe('{"result":1009007199254740993}');
    expect(up.seen.at(-1)!.request).toEqual({ a: '9007199254740993', b: '1000000000000000000' });
  });

  it('POST JSON: map, oneof, bytes, repeated messages, enums and the well-known types', async () => {
    const body = JSON.stringify({
      text: 't',
      flag: true,
      blob: 'bytes!',
      genders: ['GENDER_FEMALE', 1],
      people: [{ name: 'p', age: 9 }],
      by_name: { k: { name: 'v' } },
      label: 'chosen',
      wait: '0.010s',
      big_w: '18446744073709551',
      name_w: 'w',
      meta: { n: 1.25, list: [true, null], o: { s: 'x' } },
      list: ['a', 2],
    });
    const r = await curl(`${gw.url}/echo`, [...json, '--data-binary', body]);
    expect(r.status).toBe(200);
    expect(bodyOf(r)).toBe(
      '{"text":"t","flag":true,"blob":"bytes!","genders":["GENDER_FEMALE","GENDER_MALE"],"people":[{"name":"p","age":9}],' +
        '"by_name":{"k":{"name":"v"}},"label":"chosen","wait":"0.010s","big_w":18446744073709551,"name_w":"w",' +
        '"meta":{"n":1.25,"list":[true,null],"o":{"s":"x"}},"list":["a",2]}',
    );
  });

  it('a google.rpc.Status error with details: HTTP 503 and the decoded status in the body', async () => {
    const r = await curl(`${gw.url}/err?name=world`);
    expect(r.status).toBe(503);
    expect(r.headers['grpc-status']).toEqual(['14']);
    expect(JSON.parse(r.body)).toEqual({
      error: { code: 14, message: 'Out of service', details: [{ code: 1, message: 'The server is out of service', type: 'service' }] },
    });
  });
});
