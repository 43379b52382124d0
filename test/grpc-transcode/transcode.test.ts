// grpc-transcode end to end: protos and routes through the Admin API, plain fetch clients, a real
// @grpc/grpc-js server (test/grpc-transcode/server.ts) as the upstream over h2c.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcTranscodePlugin as def } from '../../src/plugin/builtin/grpc-transcode.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { confError } from '../plugin/helpers.ts';
import { PROTO_FILE, startGreeter, type GreeterServer } from './server.ts';

const SERVICE = 'helloworld.Greeter';

describe('grpc-transcode', () => {
  let gw: TestGateway;
  let up: GreeterServer;
  let upstream: Record<string, unknown>;

  const route = (id: string, uri: string, conf: Record<string, unknown>, up2 = upstream) =>
    gw.put(`/routes/${id}`, { uri, plugins: { 'grpc-transcode': { proto_id: 'hello', service: SERVICE, ...conf } }, upstream: up2 });

  beforeAll(async () => {
    [gw, up] = await Promise.all([startTestGateway(), startGreeter()]);
    upstream = { scheme: 'grpc', type: 'roundrobin', nodes: { [up.addr]: 1 } };
    await gw.put('/protos/hello', { content: readFileSync(PROTO_FILE, 'utf8') });
    await route('hello', '/hello', { method: 'SayHello' });
    await route('plus', '/plus', { method: 'Plus' });
    await route('plus-str', '/plus-str', { method: 'Plus', pb_option: ['int64_as_string', 'enum_as_name'] });
    await route('echo', '/echo', { method: 'Echo' });
    await route('echo-raw', '/echo-raw', { method: 'Echo', pb_option: ['enum_as_value', 'int64_as_hexstring', 'no_default_values'] });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates the conf like APISIX', async () => {
    expect(confError(def, { proto_id: '1', service: 's', method: 'm' })).toBeNull();
    expect(confError(def, { proto_id: 1, service: 's', method: 'm', pb_option: ['int64_as_string'], deadline: 500 })).toBeNull();
    expect(confError(def, { proto_id: '1', service: 's', method: 'm', pb_option: [] })).not.toBeNull();
    expect(confError(def, { proto_id: '1', service: 's', method: 'm', pb_option: ['int64_as_text'] })).not.toBeNull();
    const r = await gw.admin('PUT', '/routes/bad', { uri: '/bad', plugins: { 'grpc-transcode': { proto_id: 'hello', service: SERVICE } }, upstream });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({ error_msg: 'failed to check the configuration of plugin grpc-transcode err: property "method" is required' });
  });

  it('refuses a proto that does not compile (Admin API 400)', async () => {
    const r = await gw.admin('PUT', '/protos/broken', { content: 'syntax = "proto3"; message M { string x = 1 }' });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/^invalid content: /);
  });

  it('GET: query args become the request message; the reply is JSON with proto3 defaults', async () => {
    const r = await fetch(`${gw.url}/hello?name=world&items=a&items=b&gender=GENDER_FEMALE`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(await r.json()).toEqual({ message: 'Hello world', items: ['a', 'b'], gender: 'GENDER_FEMALE' });
    const call = up.seen.at(-1)!;
    expect(call.method).toBe('SayHello');
    expect(call.deadlineInMs).toBe(Infinity);

    const empty = await fetch(`${gw.url}/hello`);
    expect(await empty.text()).toBe('{"message":"Hello ","items":[],"gender":"GENDER_UNKNOWN"}');
  });

  it('client arg names cannot reach Object.prototype (the gateway runs in this process)', async () => {
    const probe = {} as Record<string, unknown>;
    const r = await fetch(`${gw.url}/hello?name=x&__proto__.polluted=1&constructor.prototype.polluted2=1&__proto__=3`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ message: 'Hello x', items: [], gender: 'GENDER_UNKNOWN' });
    const form = await fetch(`${gw.url}/hello`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=y&__proto__.polluted3=1',
    });
    expect(form.status).toBe(200);
    expect(probe.polluted).toBeUndefined();
    expect(probe.polluted2).toBeUndefined();
    expect(probe.polluted3).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('POST: a JSON body with nested messages, enums by name or number; form bodies too', async () => {
    const post = (body: string, type = 'application/json') => fetch(`${gw.url}/hello`, { method: 'POST', headers: { 'content-type': type }, body });
    let r = await post('{"name":"world","person":{"name":"Joe","age":1},"gender":2}');
    expect(await r.json()).toEqual({ message: 'Hello world, name: Joe, age: 1', items: [], gender: 'GENDER_FEMALE' });
    r = await post('{"name":"world","person":{"name":"Joe"},"gender":"GENDER_MALE","items":["x"]}');
    expect(await r.json()).toEqual({ message: 'Hello world, name: Joe', items: ['x'], gender: 'GENDER_MALE' });
    r = await post('name=world', 'application/x-www-form-urlencoded');
    expect(await r.json()).toMatchObject({ message: 'Hello world' });
    // Nested messages from args (dotted names), beyond APISIX.
    r = await fetch(`${gw.url}/hello?name=q&person.name=Ann&person.age=7`);
    expect(await r.json()).toMatchObject({ message: 'Hello q, name: Ann, age: 7' });
  });

  it('answers 400 when the request does not fit the message', async () => {
    const before = up.seen.length;
    for (const body of ['{"name":"world","gender":"GENDER_MA"}', '{"person":"Joe"}', '{"name":{"a":1}}']) {
      const r = await fetch(`${gw.url}/hello`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r.status).toBe(400);
      expect(await r.text()).toContain('400 Bad Request');
    }
    expect(up.seen.length).toBe(before);
  });

  it('int64: exact digits as numbers; int64_as_string gives "#..." outside 32 bits, as lua-protobuf', async () => {
    let r = await fetch(`${gw.url}/plus?a=1&b=2`);
    expect(await r.text()).toBe('{"result":3}');
    // APISIX prints 2.2517998136853e+15 here (a double); every digit survives.
    r = await fetch(`${gw.url}/plus?a=1&b=2251799813685260`);
    expect(await r.text()).toBe('{"result":2251799813685261}');
    r = await fetch(`${gw.url}/plus`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":9007199254740993,"b":"9000000000000000000"}' });
    expect(await r.text()).toBe('{"result":9009007199254740993}');
    expect(up.seen.at(-1)!.request).toEqual({ a: '9007199254740993', b: '9000000000000000000' });
    r = await fetch(`${gw.url}/plus-str?a=1&b=2`);
    expect(await r.text()).toBe('{"result":3}');
    r = await fetch(`${gw.url}/plus-str?a=1&b=2251799813685260`);
    expect(await r.text()).toBe('{"result":"#2251799813685261"}');
    r = await fetch(`${gw.url}/plus-str?a=%23-0x10&b=-9223372036854775792`);
    expect(await r.text()).toBe('{"result":"#-9223372036854775808"}');
  });

  it('nested, repeated, map, oneof, bytes, float, bool, enum and timestamp fields round-trip', async () => {
    const body =
      '{"text":"hi","big":-9007199254740993,"ubig":"18446744073709551615","small":-5,"ratio":0.25,"light":0.1,"flag":true,' +
      '"blob":"raw","gender":"GENDER_MALE","genders":["GENDER_FEMALE",0],"people":[{"name":"a","age":1},{"name":"b"}],' +
      '"owner":{"name":"o","age":40},"by_name":{"k":{"name":"v","age":2}},"by_id":{"12345678901234":"x"},"number":7,' +
      '"ids":[1,"2",9223372036854775807],"at":{"seconds":1700000000,"nanos":5}}';
    const r = await fetch(`${gw.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(text).toContain('"big":-9007199254740993');
    expect(text).toContain('"ubig":18446744073709551615');
    expect(text).toContain('"ids":[1,2,9223372036854775807]');
    expect(JSON.parse(text)).toEqual({
      text: 'hi',
      big: -9007199254740992, // JSON.parse rounds; the digits are checked above
      ubig: 18446744073709552000,
      small: -5,
      ratio: 0.25,
      light: 0.1,
      flag: true,
      blob: 'raw',
      gender: 'GENDER_MALE',
      genders: ['GENDER_FEMALE', 'GENDER_UNKNOWN'],
      people: [
        { name: 'a', age: 1 },
        { name: 'b', age: 0 },
      ],
      owner: { name: 'o', age: 40 },
      by_name: { k: { name: 'v', age: 2 } },
      by_id: { '12345678901234': 'x' },
      number: 7,
      ids: [1, 2, 9223372036854775807],
      at: { seconds: 1700000000, nanos: 5 },
      waits: [],
    });
    // What the upstream decoded (its own protobuf runtime) is what the client sent.
    const seen = up.seen.at(-1)!.request;
    expect(seen).toMatchObject({ big: '-9007199254740993', ubig: '18446744073709551615', number: 7, choice: 'number', by_id: { '12345678901234': 'x' } });
    expect(Buffer.from(seen.blob).toString()).toBe('raw');

    const raw = await fetch(`${gw.url}/echo-raw`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"gender":2,"big":-9007199254740993,"text":""}' });
    expect(await raw.text()).toBe('{"big":"#-0x20000000000001","gender":2}');
  });

  it('well-known types: Duration, wrappers, Struct, Value and ListValue in their proto3 JSON forms, both ways', async () => {
    const body =
      '{"wait":"1.5s","waits":["0s","-0.000000001s","3.000001s",{"seconds":1,"nanos":5}],"big_w":9007199254740993,' +
      '"count_w":"7","name_w":"","flag_w":false,"ratio_w":0.5,"blob_w":"hi",' +
      '"meta":{"a":1,"b":"x","c":true,"d":null,"e":[1,"two",{"f":false}],"g":{"h":[]}},"any":null,"list":[1,"a",null,{"k":"v"}]}';
    const r = await fetch(`${gw.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(200);
    const text = await r.text();
    // JSON -> protobuf: what the upstream decoded with its own protobuf runtime.
    const seen = up.seen.at(-1)!.request;
    expect(seen.wait).toEqual({ seconds: '1', nanos: 500000000 });
    expect(seen.waits).toEqual([{}, { nanos: -1 }, { seconds: '3', nanos: 1000 }, { seconds: '1', nanos: 5 }]);
    expect(seen.big_w).toEqual({ value: '9007199254740993' });
    expect(seen.count_w).toEqual({ value: 7 });
    // Present although empty: a wrapper tells "" from unset.
    expect(seen.name_w).toEqual({});
    expect(seen.flag_w).toEqual({});
    expect(seen.ratio_w).toEqual({ value: 0.5 });
    expect(Buffer.from(seen.blob_w.value).toString()).toBe('hi');
    expect(seen.meta.fields.a).toMatchObject({ numberValue: 1 });
    expect(seen.meta.fields.d).toMatchObject({ nullValue: 'NULL_VALUE' });
    expect(seen.meta.fields.e.listValue.values[2].structValue.fields.f).toMatchObject({ boolValue: false });
    expect(seen.any).toMatchObject({ nullValue: 'NULL_VALUE' });
    expect(seen.list.values.map((v: any) => v.kind)).toEqual(['numberValue', 'stringValue', 'nullValue', 'structValue']);
    // protobuf -> JSON: the forms of the mapping, exact text.
    expect(text).toContain(
      '"wait":"1.500s","waits":["0s","-0.000000001s","3.000001s","1.000000005s"],"big_w":9007199254740993,"count_w":7,"name_w":"",' +
        '"flag_w":false,"ratio_w":0.5,"blob_w":"hi","meta":{"a":1,"b":"x","c":true,"d":null,"e":[1,"two",{"f":false}],"g":{"h":[]}},' +
        '"any":null,"list":[1,"a",null,{"k":"v"}]}',
    );
    // Timestamp keeps APISIX's object form; unset wrappers stay absent (not their default).
    const bare = await fetch(`${gw.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"at":{"seconds":5}}' });
    const bareJson = (await bare.json()) as Record<string, unknown>;
    expect(bareJson.at).toEqual({ seconds: 5, nanos: 0 });
    for (const k of ['wait', 'big_w', 'name_w', 'meta', 'any', 'list']) expect(bareJson).not.toHaveProperty(k);

    // Query args: the same forms from text.
    const q = await fetch(`${gw.url}/echo?wait=-2.25s&big_w=-9007199254740993&flag_w=true&name_w=x&any=free`);
    expect(await q.text()).toContain('"wait":"-2.250s","waits":[],"big_w":-9007199254740993,"name_w":"x","flag_w":true,"any":"free"');
    // A wrapper's int64 follows the int64 option like any int64.
    const raw = await fetch(`${gw.url}/echo-raw`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"big_w":"9007199254740993","wait":"90s"}' });
    expect(await raw.text()).toBe('{"wait":"90s","big_w":"#0x20000000000001"}');
  });

  it('well-known types reject values of the wrong shape (400, the upstream is not called)', async () => {
    const before = up.seen.length;
    for (const body of ['{"wait":"1.5"}', '{"wait":"1h"}', '{"wait":"315576000001s"}', '{"meta":[1]}', '{"list":{"a":1}}', '{"count_w":"x"}', '{"big_w":[1]}']) {
      const r = await fetch(`${gw.url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r.status, body).toBe(400);
      await r.arrayBuffer();
    }
    expect(up.seen.length).toBe(before);
  });

  it('a 100k-digit Duration or int64 is refused (400) by its digit count, never parsed into a BigInt', async () => {
    const before = up.seen.length;
    const digits = '9'.repeat(100_000);
    const cases: [string, string][] = [
      ['/echo', `{"wait":"${digits}s"}`],
      ['/echo', `{"wait":"-${digits}.5s"}`],
      ['/echo', `{"big_w":"${digits}"}`],
      ['/plus', `{"a":${digits},"b":1}`],
      ['/plus', `{"a":"#-0x${'f'.repeat(100_000)}","b":1}`],
      ['/plus', `{"a":"0x${'0'.repeat(17)}1","b":1}`],
    ];
    for (const [uri, body] of cases) {
      const r = await fetch(`${gw.url}${uri}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(r.status, body.slice(0, 40)).toBe(400);
      await r.arrayBuffer();
    }
    expect(up.seen.length).toBe(before);
    // The caps sit at what the types can hold: 12 second digits, 20 decimal / 16 hex int64 digits.
    const ok = await fetch(`${gw.url}/plus`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":"-0x000000000000000f","b":"00000000000000000016"}' });
    expect(await ok.text()).toBe('{"result":1}');
    const wait = await fetch(`${gw.url}/echo-raw`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"wait":"315576000000.5s"}' });
    expect(await wait.text()).toBe('{"wait":"315576000000.500s"}');
  });

  it('max_resp_body_size truncates the buffered reply, which then fails to decode (APISIX)', async () => {
    await route('small', '/small', { method: 'Echo', max_resp_body_size: 16 });
    const body = JSON.stringify({ text: 'x'.repeat(100) });
    let r = await fetch(`${gw.url}/small`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('failed to decode response data by protobuf');
    r = await fetch(`${gw.url}/small`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"ok"}' });
    expect(await r.json()).toMatchObject({ text: 'ok' });
  });

  it('maps gRPC error statuses to HTTP; grpc-status headers pass through; no body by default', async () => {
    await route('err', '/err', { method: 'GetErrResp' });
    const r = await fetch(`${gw.url}/err?name=world`);
    expect(r.status).toBe(503);
    expect(r.headers.get('grpc-status')).toBe('14');
    // grpc-js percent-encodes grpc-message; the gateway passes the upstream's header through.
    expect(decodeURIComponent(r.headers.get('grpc-message')!)).toBe('Out of service');
    expect(r.headers.get('grpc-status-details-bin')).toBeTruthy();
    expect(await r.text()).not.toContain('error');

    await route('fail', '/fail', { method: 'Fail' });
    for (const [code, http] of [[5, 404], [7, 403], [16, 401], [3, 400], [12, 501], [8, 429]] as const) {
      const f = await fetch(`${gw.url}/fail?code=${code}&message=nope`);
      expect(f.status).toBe(http);
      expect(f.headers.get('grpc-status')).toBe(String(code));
      await f.arrayBuffer();
    }
  });

  it('show_status_in_body decodes grpc-status-details-bin, with or without status_detail_type', async () => {
    await route('err1', '/err1', { method: 'GetErrResp', show_status_in_body: true });
    let r = await fetch(`${gw.url}/err1?name=world`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({
      error: {
        code: 14,
        message: 'Out of service',
        details: [{ type_url: 'type.googleapis.com/helloworld.ErrorDetail', value: '\b\u0001\u0012\u001cThe server is out of service\u001a\u0007service' }],
      },
    });
    await route('err2', '/err2', { method: 'GetErrResp', show_status_in_body: true, status_detail_type: 'helloworld.ErrorDetail' });
    r = await fetch(`${gw.url}/err2?name=world`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ error: { code: 14, message: 'Out of service', details: [{ code: 1, message: 'The server is out of service', type: 'service' }] } });
    await route('err3', '/err3', { method: 'GetErrResp', show_status_in_body: true, status_detail_type: 'helloworld.error' });
    r = await fetch(`${gw.url}/err3?name=world`);
    expect(r.status).toBe(503);
    expect(await r.text()).toBe('failed to call pb.decode to decode details in grpc-status-details-bin');
  });

  it('deadline becomes grpc-timeout: a slow call ends with 504, a fast one succeeds', async () => {
    await route('slow', '/slow', { method: 'SayHelloAfterDelay', deadline: 300 });
    await route('quick', '/quick', { method: 'SayHello', deadline: 5000 });
    const t0 = Date.now();
    const r = await fetch(`${gw.url}/slow?name=apisix`);
    const elapsed = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(r.headers.get('grpc-status')).toBe('4');
    expect(elapsed).toBeLessThan(1400); // the upstream would answer after 1500 ms
    const slowCall = up.seen.at(-1)!;
    expect(slowCall.method).toBe('SayHelloAfterDelay');
    expect(slowCall.deadlineInMs).toBeGreaterThan(0);
    expect(slowCall.deadlineInMs).toBeLessThanOrEqual(300);

    const q = await fetch(`${gw.url}/quick?name=apisix`);
    expect(await q.json()).toMatchObject({ message: 'Hello apisix' });
    const quickCall = up.seen.at(-1)!;
    expect(quickCall.deadlineInMs).toBeGreaterThan(1000);
    expect(quickCall.deadlineInMs).toBeLessThanOrEqual(5000);
  });

  it('unknown service or method answers 503 without calling the upstream', async () => {
    await route('nosvc', '/nosvc', { service: 'helloworld.Nope', method: 'SayHello' });
    await route('nomethod', '/nomethod', { method: 'Nope' });
    const before = up.seen.length;
    for (const p of ['/nosvc', '/nomethod']) {
      const r = await fetch(`${gw.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(503);
      expect(await r.text()).toContain('503 Service Temporarily Unavailable');
    }
    expect(up.seen.length).toBe(before);
  });

  // The pipeline decides on gRPC-shaped local answers from the client's own content-type (before
  // grpc-transcode rewrote it): this HTTP client gets APISIX's 502 (t/plugin/grpc-transcode.t TEST 10).
  it('an unreachable upstream answers 502 to the HTTP client', async () => {
    const dead = await freePort();
    await route('dead', '/dead', { method: 'SayHello' }, { scheme: 'grpc', type: 'roundrobin', nodes: { [`127.0.0.1:${dead}`]: 1 } });
    const r = await fetch(`${gw.url}/dead?name=x`);
    await r.arrayBuffer();
    expect(r.status).toBe(502);
  });

  it('a proto still used by a route cannot be deleted', async () => {
    const r = await gw.admin('DELETE', '/protos/hello');
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/^can not delete this proto, route \[.+\] is still using it now$/);
  });
});
