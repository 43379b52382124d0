// http-dubbo with `serialization: "hessian2"` (Switchyard extension) driven by curl through a running gateway
// against real hessian2 providers (test/helpers/dubbo-provider.ts, on hessian.js, independent of the gateway's
// codec): JSON in, the provider's value out as JSON; arguments typed by params_type_desc (checked on the
// provider's side with the hessian types it decoded); an exception is a 500 whose JSON carries its class and
// message; a killed provider fails over to the second one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpDubboPlugin as def } from '../../src/plugin/builtin/http-dubbo.ts';
import { curl } from '../helpers/curl.ts';
import { startDubboProvider, type DubboProvider, type Method } from '../helpers/dubbo-provider.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { confError } from '../plugin/helpers.ts';

const SVC = 'org.apache.dubbo.backend.UserService';

function service(name: string): Record<string, Record<string, Method>> {
  return {
    [SVC]: {
      greet: ([who, times, id, score, vip]) => ({ text: `hello ${String(who)} x${String(times)}`, id, score, vip, from: name }),
      describe: (args) => ({ args, from: name }),
      whoami: () => name,
      nothing: () => null,
      fail: ([why]) => {
        throw new Error(`refused: ${String(why)} by ${name}`);
      },
      bytes: () => Buffer.from('raw bytes'),
    },
  };
}

let gw: TestGateway;
let a: DubboProvider;
let b: DubboProvider;

const route = (method: string, desc: string, upstream: unknown, more: Record<string, unknown> = {}): Record<string, unknown> => ({
  plugins: { 'http-dubbo': { service_name: SVC, service_version: '1.0.0', method, params_type_desc: desc, serialization: 'hessian2', ...more } },
  upstream,
});

const post = (path: string, body: string) => curl(`${gw.url}${path}`, ['-X', 'POST', '-H', 'content-type: application/json', '--data-binary', body]);

beforeAll(async () => {
  gw = await startTestGateway();
  a = await startDubboProvider(service('a'), 'a');
  b = await startDubboProvider(service('b'), 'b');
  const one = { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: a.port, weight: 1 }] };
  await gw.put('/routes/greet', { uri: '/greet', ...route('greet', 'Ljava/lang/String;IJDZ', one) });
  await gw.put('/routes/describe', {
    uri: '/describe',
    ...route('describe', 'Ljava/util/Map;Ljava/util/List;Lorg/apache/dubbo/backend/User;[ILjava/lang/Integer;Ljava/lang/Object;', one),
  });
  await gw.put('/routes/nothing', { uri: '/nothing', ...route('nothing', '', one) });
  await gw.put('/routes/fail', { uri: '/fail', ...route('fail', 'Ljava/lang/String;', one) });
  await gw.put('/routes/bytes', { uri: '/bytes', ...route('bytes', '', one) });
  await gw.put('/routes/missing', {
    uri: '/missing',
    plugins: { 'http-dubbo': { service_name: 'org.example.Missing', method: 'm', serialization: 'hessian2' } },
    upstream: one,
  });
  await gw.put('/routes/fail-exposed', { uri: '/fail-exposed', ...route('fail', 'Ljava/lang/String;', one, { expose_provider_errors: true }) });
  await gw.put('/routes/missing-exposed', {
    uri: '/missing-exposed',
    plugins: { 'http-dubbo': { service_name: 'org.example.Missing', method: 'm', serialization: 'hessian2', expose_provider_errors: true } },
    upstream: one,
  });
}, 20_000);

afterAll(async () => {
  await gw?.close();
  await a?.kill().catch(() => undefined);
  await b?.kill().catch(() => undefined);
});

describe('http-dubbo hessian2 schema', () => {
  it('takes serialization fastjson (default) or hessian2, and refuses fastjson-only fields and bad descriptors with hessian2', () => {
    const base = { service_name: SVC, method: 'm' };
    expect(confError(def, { ...base, serialization: 'hessian2', params_type_desc: 'Ljava/lang/String;I' })).toBeNull();
    expect(confError(def, { ...base, serialization: 'json' })).not.toBeNull();
    expect(confError(def, { ...base, serialization: 'hessian2', serialized: true })).not.toBeNull();
    expect(confError(def, { ...base, serialization: 'hessian2', serialization_header_key: 'x-ser' })).not.toBeNull();
    expect(confError(def, { ...base, serialization: 'hessian2', params_type_desc: 'Ljava/lang/String' })).toMatch(/unterminated/);
    expect(confError(def, { ...base, serialization: 'hessian2', params_type_desc: 'Q' })).toMatch(/unknown type/);
    // fastjson mode passes the descriptor through as APISIX does.
    expect(confError(def, { ...base, params_type_desc: 'Q', serialized: true })).toBeNull();
  });
});

describe('http-dubbo hessian2 calls (curl)', () => {
  it('turns the JSON array into typed arguments and answers the value as JSON', async () => {
    const r = await post('/greet', '["zhangsan", 3, 9007199254740991, 1.5, true]');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toEqual(['application/json']);
    expect(JSON.parse(r.body)).toEqual({ text: 'hello zhangsan x3', id: 9007199254740991, score: 1.5, vip: true, from: 'a' });
    const got = a.received.at(-1)!;
    expect(got).toMatchObject({ service: SVC, method: 'greet', desc: 'Ljava/lang/String;IJDZ' });
    // On the wire: a string, an int (not the long or double a bare JS number may become), a long, a double, a boolean.
    expect(got.kinds).toEqual(['string', 'int', 'long', 'double', 'bool']);
    const small = await post('/greet', '["x", 1, 1, 2, false]');
    expect(small.status).toBe(200);
    expect(a.received.at(-1)!.kinds).toEqual(['string', 'int', 'long', 'double', 'bool']);
  });

  it('sends maps, lists, objects of the declared class, typed arrays and boxed nulls', async () => {
    const body = JSON.stringify([{ k: 'v', n: { deep: [1] } }, ['x', 2], { name: 'li', age: 30 }, [1, 2, 3], null, { $class: 'java.lang.Object', $: 'any' }]);
    const r = await post('/describe', body);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ args: [{ k: 'v', n: { deep: [1] } }, ['x', 2], { name: 'li', age: 30 }, [1, 2, 3], null, 'any'], from: 'a' });
    const got = a.received.at(-1)!;
    expect(got.kinds).toEqual(['map', 'list', 'object', 'list', 'null', 'string']);
    const typed = got.typed as { $class: string; $: unknown }[];
    expect(typed[2]).toMatchObject({ $class: 'org.apache.dubbo.backend.User' });
    expect(typed[3]).toMatchObject({ $class: '[int' });
  });

  it('answers 400 with an error_msg when the body does not fit params_type_desc, without calling the provider', async () => {
    const before = a.received.length;
    const cases: [string, string, RegExp][] = [
      ['/greet', '["x", "3", 1, 1.5, true]', /argument 2: expected int, got string/],
      ['/greet', '["x", 3.5, 1, 1.5, true]', /argument 2: expected int/],
      ['/greet', '["x", 2147483648, 1, 1.5, true]', /argument 2: 2147483648 is out of range for int/],
      ['/greet', '["x", 3, 1, 1.5, null]', /argument 5: expected boolean, got null/],
      ['/greet', '["x"]', /takes 5 argument\(s\).*has 1/],
      ['/greet', 'not json', /invalid JSON request body/],
      ['/greet', '"x"', /must be a JSON array or object/],
      // A client cannot name a Java class the route did not declare (hessian deserialization gadgets).
      ['/describe', '[{}, [], {"$class": "com.sun.rowset.JdbcRowSetImpl", "$": {}}, [], 1, 1]', /argument 3: "\$class" must be the declared org.apache.dubbo.backend.User/],
    ];
    for (const [path, body, msg] of cases) {
      const r = await post(path, body);
      expect(r.status, body).toBe(400);
      expect(JSON.parse(r.body).error_msg, body).toMatch(msg);
    }
    expect(a.received.length).toBe(before);
  });

  it('keeps a nested {"$class", "$"} pair a plain map entry', async () => {
    const r = await post('/describe', JSON.stringify([{ x: { $class: 'com.sun.rowset.JdbcRowSetImpl', $: {} } }, [], {}, [], 1, 1]));
    expect(r.status).toBe(200);
    const got = a.received.at(-1)!;
    expect(got.kinds[0]).toBe('map');
    // x arrives as a HashMap whose "$class" entry is a plain string, not as an object of that class.
    const x = (got.typed[0] as { $: { x: { $class: string; $: Record<string, unknown> } } }).$.x;
    expect(x.$class).toBe('java.util.HashMap');
    expect(x.$.$class).toBe('com.sun.rowset.JdbcRowSetImpl');
  });

  it('answers an exception as a fixed 500, null as an empty 200, an unknown service as 500 with the status only', async () => {
    const ex = await post('/fail', '["no reason"]');
    expect(ex.status).toBe(500);
    expect(ex.headers['content-type']![0]).toMatch(/^application\/json/);
    // The provider's message and class stay in the log: they describe provider internals.
    expect(JSON.parse(ex.body)).toEqual({ error_msg: 'dubbo provider raised an exception' });
    const nul = await post('/nothing', '[]');
    expect(nul.status).toBe(200);
    expect(nul.body).toBe('');
    const empty = await curl(`${gw.url}/nothing`);
    expect(empty.status).toBe(200);
    const miss = await post('/missing', '');
    expect(miss.status).toBe(500);
    expect(JSON.parse(miss.body)).toEqual({ error_msg: 'dubbo call failed', dubbo_status: 60 });
    const bytes = await post('/bytes', '[]');
    expect(JSON.parse(bytes.body)).toBe(Buffer.from('raw bytes').toString('base64'));
  });

  it('expose_provider_errors answers the provider\'s exception message and class, and its status message', async () => {
    expect(confError(def, { service_name: SVC, method: 'm', serialization: 'hessian2', expose_provider_errors: 'yes' })).not.toBeNull();
    const ex = await post('/fail-exposed', '["no reason"]');
    expect(ex.status).toBe(500);
    expect(JSON.parse(ex.body)).toEqual({ error_msg: 'refused: no reason by a', exception: 'java.lang.IllegalStateException' });
    const miss = await post('/missing-exposed', '');
    expect(miss.status).toBe(500);
    expect(JSON.parse(miss.body)).toEqual({ error_msg: expect.stringMatching(/service org.example.Missing not found/), dubbo_status: 60 });
  });

  it('fails over to the second provider when the first is killed', async () => {
    const victim = await startDubboProvider(service('victim'), 'victim');
    await gw.put('/routes/pair', {
      uri: '/pair',
      ...route('whoami', '', { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: victim.port, weight: 1 }, { host: '127.0.0.1', port: b.port, weight: 1 }] }),
    });
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await post('/pair', '[]');
      expect(r.status).toBe(200);
      seen.add(JSON.parse(r.body) as string);
    }
    expect([...seen].sort()).toEqual(['b', 'victim']);
    await victim.kill();
    const bBefore = b.calls.get(`${SVC}#whoami`) ?? 0;
    for (let i = 0; i < 6; i++) {
      const r = await post('/pair', '[]');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toBe('b');
    }
    expect(b.calls.get(`${SVC}#whoami`)).toBe(bBefore + 6);
  });
});
