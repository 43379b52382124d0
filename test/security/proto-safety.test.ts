// Prototype safety (issue 20). Two guards:
// 1. A source scan (test/security/proto-scan.ts) of src/, protocols/ and stream-routes/ for computed-key writes
//    (`x[k] = v`, `??=`, `||=`, `&&=`) on ordinary objects (object literals and their aliases): the shape of the
//    grpc-transcode argsTable bug fixed in c281d5d (`?__proto__.x=1` set x on Object.prototype). Every such
//    site must be in REVIEWED with a reason; a new site fails here until it is made safe (Object.create(null),
//    a Map, ownSet) or reviewed. A reviewed site that no longer exists fails too, so the list stays true. Not
//    covered: writes through function parameters (the scan does not follow calls).
// 2. Through a real gateway (in this process, so Object.prototype is the gateway's): `__proto__`,
//    `constructor` and `prototype` keys in JSON bodies, query args, form bodies and header names sent to the
//    plugins that parse client input (grpc-transcode, request-validation, ai-prompt-decorator/-template,
//    file-logger's query/header capture) leave Object.prototype clean; an inherited name as a header
//    (`Constructor`) is an ordinary field both ways.
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H3Request } from '../../protocols/http3/request.ts';
import { PROTO_FILE, startGreeter, type GreeterServer } from '../grpc-transcode/server.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { params, runs } from '../fuzz/runs.ts';
import { scanPrototypeUnsafeWrites } from './proto-scan.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** [file, written expression + operator, why it is safe]. */
const REVIEWED: readonly (readonly [string, string, string])[] = [
  ['protocols/http/node-adapter.ts', 'out[k] =', 'copy of response headers/trailers (own keys); header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['protocols/http3/request.ts', 'headers[name] =', 'client field names: inherited names are treated as new fields, string values (set-cookie arrays) on own keys'],
  ['src/admin/configs.ts', 'doc[coll + VERSION_SUFFIX] =', 'collection names are the fixed CONFIGS_COLLECTIONS'],
  ['src/admin/configs.ts', 'doc[coll] =', 'collection names are the fixed CONFIGS_COLLECTIONS'],
  ['src/admin/configs.ts', 'h[DIGEST] =', 'key from a fixed set of names in the code'],
  ['src/admin/configs.ts', 'h[LAST_MODIFIED] =', 'key from a fixed set of names in the code'],
  ['src/admin/configs.ts', 'value[k] =', 'keys of a stored resource (validated by safe-json on write)'],
  ['src/admin/plugins-endpoints.ts', 'dump[def.name] =', 'plugin names of the registry (code)'],
  ['src/admin/ui/live.ts', 'out[k] =', 'keys of stored resources (validated by safe-json on write)'],
  ['src/config/standalone-format.ts', 'doc[GEN_ID_KEY] =', 'key from a fixed set of names in the code'],
  ['src/config/standalone-format.ts', 'doc[`${coll}_conf_version`] =', 'the _conf_version suffix makes a forbidden name impossible'],
  ['src/config/standalone-format.ts', 'doc[coll] =', 'collection names are the fixed STANDALONE_COLLECTIONS'],
  ['src/config/standalone-format.ts', 'out[k] =', 'keys of a resource parsed by parseStandalone, which refuses forbidden keys'],
  ['src/config/standalone-render.ts', 'scalars[GEN_ID_KEY] =', 'key from a fixed set of names in the code'],
  ['src/config/standalone-render.ts', 'scalars[`${coll}_conf_version`] =', 'the _conf_version suffix makes a forbidden name impossible'],
  ['src/config/store-file.ts', 'incoming[coll] =', 'collection names checked against the known collections'],
  ['src/config/store-file.ts', 'out[k] =', 'keys of a stored resource (validated by safe-json on write)'],
  ['src/health/control-v1.ts', 'main[name] =', 'the fixed MAIN_KINDS'],
  ['src/health/control-v1.ts', 'out[def.name] =', 'plugin names of the registry (code)'],
  ['src/health/discovery-dns.ts', 'services[name] =', 'service names of validated config; value is an array on an own key or ignored for __proto__ (JSON report only)'],
  ['src/pipeline/context.ts', 'this.headers[key] =', 'plugin-set response headers (names from validated config); header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/pipeline/forward.ts', 'out[name] =', 'copy of a parsed header map: the engines\' maps hold no inherited names (addHeader), values strings/arrays on own keys'],
  ['src/pipeline/pipeline.ts', 'headers[k.toLowerCase()] =', 'local-reply headers set by plugins from config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/pipeline/tunnel.ts', 'headers[k] =', 'upstream 101 head: __proto__ could swap this one map\'s prototype (no shared object reached); names checked by the upgrade client'],
  ['src/plugin/builtin/ai-request-rewrite.ts', 'body[k] =', 'options of validated config'],
  ['src/plugin/builtin/ai/engine.ts', 'out[name] =', 'copy of a parsed header map (own keys) plus configured auth headers; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/ai/providers.ts', 'authHeaders[k.toLowerCase()] =', 'auth.header of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/api-breaker.ts', 'headers[k] =', 'header names of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/cors.ts', 'this.headers[name] =', 'CORS header names set by the plugin (code)'],
  ['src/plugin/builtin/dubbo-proxy.ts', 'headers[k] =', 'provider attachment names, TOKEN-checked; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/dubbo/hessian-json.ts', 'o[typeof k === \'string\' ? k : JSON.stringify(k)] =', 'provider map keys: __proto__ could only swap this one result object\'s prototype; it is serialized, not walked'],
  ['src/plugin/builtin/elasticsearch-logger.ts', 'probe[k.toLowerCase()] =', 'headers of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/fault-injection.ts', 'headers[k] =', 'header names of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/forward-auth.ts', 'headers[name] =', 'header names of validated config (request_headers, extra headers); header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/forward-auth.ts', 'out[name] =', 'client_headers names of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/grpc-transcode/request.ts', 'out[field.name] =', 'protobuf field names of a compiled proto (protobufjs), not client keys'],
  ['src/plugin/builtin/hmac-auth/signature.ts', 'params[key] =', 'key checked to be keyId, algorithm or signature just before'],
  ['src/plugin/builtin/log-common.ts', 'e[k] =', 'log_format keys of validated config'],
  ['src/plugin/builtin/log-common.ts', 'entry[k] =', 'log_format keys of validated config'],
  ['src/plugin/builtin/log-common.ts', 'out[k] =', 'header copy (own keys) and client query args: __proto__ could swap only this log object\'s prototype; it is serialized, not walked'],
  ['src/plugin/builtin/loki-logger.ts', 'headers[k.toLowerCase()] =', 'headers of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/loki-logger.ts', 'resolved[name] =', 'label names of validated config'],
  ['src/plugin/builtin/mocking.ts', 'headers[k.toLowerCase()] =', 'response_headers of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/mocking.ts', 'out[k] =', 'response_schema property names of validated config'],
  ['src/plugin/builtin/openid-connect/bearer.ts', 'extra[name] =', 'addon header names of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/openid-connect/flow.ts', 'out[k] =', 'string map of validated config or an OP\'s JSON; string values only, so __proto__ is ignored'],
  ['src/plugin/builtin/opentelemetry.ts', 'headers[k.toLowerCase()] =', 'collector headers of validated config; header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/proxy-mirror.ts', 'out[name] =', 'copy of a parsed header map (own keys); header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/plugin/builtin/request-validation.ts', 'view[declared] =', 'declared header names of the validated schema'],
  ['src/plugin/builtin/request-validation.ts', 'view[k] =', 'copy of a parsed header map (own keys, no inherited names since addHeader)'],
  ['src/plugin/builtin/splunk-hec-logging.ts', 'event[k] =', 'log_format keys of validated config'],
  ['src/plugin/secret-refs.ts', 'out[k] =', 'keys of validated config'],
  ['src/reload.ts', 'attr[name] =', 'plugin_attr names of the validated local config'],
  ['src/router/path.ts', 'out[names[i]] =', 'parameter names of route URIs (validated config)'],
  ['src/schema/clone.ts', 'out[k] =', 'schema keys (code) and validated config'],
  ['src/schema/compile.ts', 'step[s] =', 'the fixed SHARED_KEYS'],
  ['src/schema/compile.ts', 'structural[k] =', 'JSON Schema keywords of our own schemas (code)'],
  ['src/upstream/dispatch.ts', 'out[k2] =', 'copy of a header map (own keys); header map of string values: a string written to __proto__ is ignored, nothing nested is walked'],
  ['src/upstream/dispatch.ts', 'this.trailerMap[k] =', 'upstream trailers, string values only: __proto__ is ignored, nothing nested'],
  ['src/upstream/h1/wire.ts', 'out[k] =', 'upstream header names: inherited names are treated as new fields, values strings/arrays on own keys'],
];

describe('source scan: computed-key writes on ordinary objects', () => {
  it('every site is reviewed, every reviewed site still exists', () => {
    const sites = scanPrototypeUnsafeWrites(ROOT, ['src', 'protocols', 'stream-routes']);
    const reviewed = new Set(REVIEWED.map(([f, c]) => `${f}: ${c}`));
    const found = new Set(sites.map((s) => `${s.file}: ${s.code}`));
    const unreviewed = sites.filter((s) => !reviewed.has(`${s.file}: ${s.code}`)).map((s) => `${s.file}:${s.line}: ${s.code}`);
    expect(unreviewed, 'new computed-key writes on ordinary objects: use Object.create(null), a Map or ownSet, or review them here').toEqual([]);
    expect([...reviewed].filter((k) => !found.has(k)), 'reviewed sites that no longer exist').toEqual([]);
    for (const [, , why] of REVIEWED) expect(why.length).toBeGreaterThan(10);
  }, 60_000);

  it('the scan finds the argsTable shape (the c281d5d bug) and aliases of it', () => {
    // Scanned from a fixture directory: the pre-fix code, reduced.
    const sites = scanPrototypeUnsafeWrites(ROOT, ['test/security/fixtures']);
    expect(sites.map((s) => s.code).sort()).toEqual(['at[seg] =', 'at[segs[segs.length - 1]!] =', 'out[k] ??=', 'table[a]![b] =']);
  });
});

describe('HTTP/3 request fields named like Object.prototype members', () => {
  it('are ordinary fields (no QUIC client here sends custom fields: the field-to-request step alone)', () => {
    // buildRequest read `constructor` as Object and forwarded "function Object() { [native code] }, a".
    const build = (H3Request.prototype as unknown as { buildRequest(this: unknown, f: [string, string][]): { headers: Record<string, unknown> } }).buildRequest;
    const self = { host: { remoteAddr: '127.0.0.1', remotePort: 1, serverAddr: '127.0.0.1', serverPort: 2, tlsFor: () => null }, expectedLength: -1 };
    const req = build.call(self, [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/'],
      [':authority', 'a'],
      ['constructor', 'a'],
      ['tostring', 'b'],
      ['__proto__', 'c'],
      ['valueof', 'd'],
      ['valueof', 'e'],
    ]);
    expect([req.headers.constructor, req.headers.tostring, req.headers.valueof]).toEqual(['a', 'b', 'd, e']);
    expect(Object.getPrototypeOf(req.headers)).toBe(Object.prototype);
    prototypeClean();
  });
});

function prototypeClean(): void {
  const probe = {} as Record<string, unknown>;
  expect(Object.keys(Object.prototype)).toEqual([]);
  for (const k of ['polluted', 'x', 'admin', 'isAdmin', 'length', '0']) expect(probe[k], k).toBeUndefined();
  expect(Object.getPrototypeOf(Object.prototype)).toBeNull();
}

const FORBIDDEN = ['__proto__', 'constructor', 'prototype'];
const key = fc.oneof(fc.constantFrom(...FORBIDDEN, '__proto__.polluted', 'constructor.prototype.polluted', '__proto__[polluted]', 'x'), fc.string({ maxLength: 4 }));
const jsonDoc = fc
  .letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small' }, fc.constantFrom('yes', 1, true, null), tie('obj'), fc.array(tie('value'), { maxLength: 2 })),
    obj: fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }),
  }))
  .obj.map(function render(pairs: unknown): string {
    // Written by hand so `__proto__` is an own key in the text (JSON.stringify of an object would drop it).
    const v = (x: unknown): string => (Array.isArray(x) && x.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string') && x.length > 0 ? render(x) : JSON.stringify(x));
    return `{${(pairs as [string, unknown][]).map(([k, x]) => `${JSON.stringify(k)}:${v(x)}`).join(',')}}`;
  });
const queryArgs = fc.array(fc.tuple(key, fc.constantFrom('1', 'yes', '')), { minLength: 1, maxLength: 5 }).map((a) => a.map(([k, v]) => `${encodeURIComponent(k)}=${v}`).join('&'));

describe('through a real gateway: prototype keys from clients', () => {
  let gw: TestGateway;
  let echo: EchoServer;
  let greeter: GreeterServer;
  let upH: http.Server;
  let logPath: string;
  const N = runs(60);

  beforeAll(async () => {
    [gw, echo, greeter] = await Promise.all([startTestGateway({ config: { switchyard: { http1_engine: 'socket' } } }), startEcho('up'), startGreeter()]);
    upH = http.createServer((_req, res) => {
      res.setHeader('Constructor', 'b');
      res.setHeader('__proto__', 'c');
      res.setHeader('ToString', 'd');
      res.end('ok');
    });
    await new Promise<void>((r) => upH.listen(0, '127.0.0.1', r));
    logPath = path.join(gw.dir, 'access.jsonl');
    const upstream = { nodes: { [echo.addr]: 1 } };
    await gw.put('/protos/hello', { content: await readFile(PROTO_FILE, 'utf8') });
    await gw.put('/routes/transcode', {
      uri: '/hello',
      plugins: { 'grpc-transcode': { proto_id: 'hello', service: 'helloworld.Greeter', method: 'SayHello' } },
      upstream: { scheme: 'grpc', nodes: { [greeter.addr]: 1 } },
    });
    await gw.put('/routes/validate', {
      uri: '/validate',
      plugins: { 'request-validation': { body_schema: { type: 'object', properties: { name: { type: 'string' } } }, header_schema: { type: 'object' } } },
      upstream,
    });
    await gw.put('/routes/form', {
      uri: '/form',
      plugins: { 'request-validation': { body_schema: { type: 'object' } } },
      upstream,
    });
    await gw.put('/routes/ai', { uri: '/ai', plugins: { 'ai-prompt-decorator': { prepend: [{ role: 'system', content: 'be brief' }] } }, upstream });
    await gw.put('/routes/ai-template', {
      uri: '/ai-template',
      plugins: { 'ai-prompt-template': { templates: [{ name: 't', template: { model: 'm', messages: [{ role: 'user', content: 'say {{__proto__}} {{constructor}} {{x.toString}}' }] } }] } },
      upstream,
    });
    await gw.put('/routes/logged', { uri: '/logged', plugins: { 'file-logger': { path: logPath, include_req_body: true } }, upstream });
    await gw.put('/routes/inherited', { uri: '/inherited', upstream: { nodes: { [`127.0.0.1:${(upH.address() as AddressInfo).port}`]: 1 } } });
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await echo?.close();
    await greeter?.close();
    await new Promise((r) => upH?.close(r));
  });

  it(`JSON bodies, query args, form bodies and header names with prototype keys (${N} inputs per plugin)`, async () => {
    const cases = fc.sample(fc.tuple(jsonDoc, queryArgs, fc.constantFrom(...FORBIDDEN)), params(N) as fc.Parameters<[string, string, string]>);
    const statuses = new Map<string, number>();
    const count = (what: string, s: number) => statuses.set(`${what} ${s}`, (statuses.get(`${what} ${s}`) ?? 0) + 1);
    for (const [doc, query, header] of cases) {
      // The document's members after a first one of our own (`,...}` or `}`).
      const rest = doc === '{}' ? '}' : `,${doc.slice(1)}`;
      const json = { 'content-type': 'application/json', [header === '__proto__' ? 'x-proto' : header]: 'yes' };
      const sends: [string, Promise<Response>][] = [
        ['transcode-get', fetch(`${gw.url}/hello?name=a&${query}`)],
        ['transcode-json', fetch(`${gw.url}/hello`, { method: 'POST', headers: json, body: doc })],
        ['transcode-form', fetch(`${gw.url}/hello`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: query })],
        ['validate-json', fetch(`${gw.url}/validate?${query}`, { method: 'POST', headers: json, body: doc })],
        ['validate-form', fetch(`${gw.url}/form`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: query })],
        ['ai', fetch(`${gw.url}/ai`, { method: 'POST', headers: json, body: `{"messages":[{"role":"user","content":"hi"}]${rest}` })],
        ['ai-template', fetch(`${gw.url}/ai-template`, { method: 'POST', headers: json, body: `{"template_name":"t"${rest}` })],
        ['logged', fetch(`${gw.url}/logged?${query}`, { method: 'POST', headers: json, body: doc })],
      ];
      for (const [what, p] of sends) {
        const r = await p;
        await r.arrayBuffer();
        count(what, r.status);
        expect(r.status, `${what}: ${doc} ${query}`).toBeLessThan(500);
      }
      prototypeClean();
    }
    console.log(`prototype keys through the gateway: ${cases.length} x 8 requests, ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
  }, 120_000);

  it('ai-prompt-template: a variable named like an Object.prototype member is a body field, absent here', async () => {
    // lookup() read inherited members: {{constructor}} rendered Object, JSON.stringify gave undefined, and the
    // request failed with 500.
    const r = await fetch(`${gw.url}/ai-template`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"template_name":"t","x":"s"}' });
    expect(r.status).toBe(200);
    // The echo upstream reports the length of what it received: the template with every place empty.
    const want = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'say   ' }] });
    expect(((await r.json()) as { bodyLength: number }).bodyLength).toBe(Buffer.byteLength(want));
  });

  it('a header whose name Object.prototype has is an ordinary field both ways (socket engine, socket upstream client)', async () => {
    // The engine's header map read `constructor` as Object and forwarded "function Object() { [native code] }, a";
    // the upstream client called push() on Object.prototype for a `__proto__` response header and failed.
    const r = await fetch(`${gw.url}/echo-headers`, { headers: { Constructor: 'a', ToString: 'b', HasOwnProperty: 'c' } });
    expect(r.status).toBe(404);
    await r.arrayBuffer();
    await gw.put('/routes/echo-headers', { uri: '/echo-headers', upstream: { nodes: { [echo.addr]: 1 } } });
    const e = await fetch(`${gw.url}/echo-headers`, { headers: { Constructor: 'a', ToString: 'b', HasOwnProperty: 'c' } });
    const seen = ((await e.json()) as { headers: Record<string, string> }).headers;
    expect([seen.constructor, seen.tostring, seen.hasownproperty]).toEqual(['a', 'b', 'c']);
    const u = await fetch(`${gw.url}/inherited`);
    expect(u.status).toBe(200);
    expect(await u.text()).toBe('ok');
    expect([u.headers.get('constructor'), u.headers.get('tostring')]).toEqual(['b', 'd']);
    prototypeClean();
  });
});
