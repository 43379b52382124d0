import { describe, expect, it } from 'vitest';
import { buildRouter } from '../../src/router/router.ts';
import type { MatchInput, RouteSpec } from '../../src/router/router.ts';
import type { VarValue, Vars } from '../../src/router/vars.ts';

/** A request's variables; `uri_param_<name>` is served from the router-provided params, as in APISIX. */
class TestVars implements Vars {
  input: MatchInput | null = null;
  readonly values: Record<string, VarValue>;
  constructor(values: Record<string, VarValue>) {
    this.values = values;
  }
  get(name: string): VarValue {
    if (name.startsWith('uri_param_')) return this.input?.params?.[name.slice(10)];
    return this.values[name];
  }
}

interface Req {
  path: string;
  method?: string;
  host?: string;
  remoteAddr?: string;
  vars?: Record<string, VarValue>;
}

function input(req: Req): MatchInput {
  const vars = new TestVars(req.vars ?? {});
  const inp: MatchInput = {
    method: req.method ?? 'GET',
    host: req.host ?? 'localhost',
    path: req.path,
    remoteAddr: req.remoteAddr ?? '127.0.0.1',
    vars,
    params: null,
  };
  vars.input = inp;
  return inp;
}

type Spec = Omit<RouteSpec<string>, 'payload' | 'priority'> & { priority?: number };

function router(specs: Spec[]) {
  return buildRouter(specs.map((s) => ({ priority: 0, ...s, payload: `payload-${s.id}` })));
}

function hit(r: ReturnType<typeof router>, req: Req | string): string | null {
  const m = r.match(input(typeof req === 'string' ? { path: req } : req));
  return m ? m.routeId : null;
}

describe('uri kinds and precedence', () => {
  it('exact match', () => {
    const r = router([{ id: 'a', uris: ['/a/b'] }]);
    expect(hit(r, '/a/b')).toBe('a');
    expect(hit(r, '/a/b/')).toBeNull();
    expect(hit(r, '/a')).toBeNull();
    expect(hit(r, '/a/bc')).toBeNull();
  });

  it('prefix match with /*, /foo* and the /* catch-all', () => {
    const r = router([
      { id: 'star', uris: ['/a/*'] },
      { id: 'foo', uris: ['/foo*'] },
      { id: 'all', uris: ['/*'] },
    ]);
    expect(hit(r, '/a/')).toBe('star');
    expect(hit(r, '/a/b/c')).toBe('star');
    expect(hit(r, '/a')).toBe('all');
    expect(hit(r, '/foo')).toBe('foo');
    expect(hit(r, '/foobar/x')).toBe('foo');
    expect(hit(r, '/')).toBe('all');
    expect(hit(r, '/zzz')).toBe('all');
    expect(hit(r, 'no-slash')).toBeNull();
  });

  it('exact beats prefix beats shorter prefix, regardless of priority', () => {
    const r = router([
      { id: 'all', uris: ['/*'], priority: 100 },
      { id: 'api', uris: ['/api/*'], priority: 50 },
      { id: 'users', uris: ['/api/users/*'] },
      { id: 'exact', uris: ['/api/users/list'], priority: -5 },
    ]);
    expect(hit(r, '/api/users/list')).toBe('exact');
    expect(hit(r, '/api/users/1')).toBe('users');
    expect(hit(r, '/api/other')).toBe('api');
    expect(hit(r, '/other')).toBe('all');
  });

  it(':param segments capture and need a non-empty segment', () => {
    const r = router([{ id: 'user', uris: ['/user/:name'] }]);
    const m = r.match(input({ path: '/user/john' }));
    expect(m).toEqual({ payload: 'payload-user', params: { name: 'john' }, routeId: 'user', uri: '/user/:name', host: null });
    expect(hit(r, '/user/')).toBeNull();
    expect(hit(r, '/user')).toBeNull();
    expect(hit(r, '/user/john/x')).toBeNull();
  });

  it('params with a trailing *name and mid-path literals', () => {
    const r = router([
      { id: 'action', uris: ['/user/:user/*action'] },
      { id: 'files', uris: ['/repo/:owner/:name/blob/*path'] },
      { id: 'slash', uris: ['/t/:x/'] },
    ]);
    expect(r.match(input({ path: '/user/john/send/now' }))?.params).toEqual({ user: 'john', action: 'send/now' });
    expect(r.match(input({ path: '/user/john/' }))?.params).toEqual({ user: 'john', action: '' });
    expect(hit(r, '/user/john')).toBeNull();
    const blob = r.match(input({ path: '/repo/o/n/blob/a/b.ts' }));
    expect(blob?.params).toEqual({ owner: 'o', name: 'n', path: 'a/b.ts' });
    expect(hit(r, '/repo/o/n/tree/a')).toBeNull();
    expect(hit(r, '/t/1/')).toBe('slash');
    expect(hit(r, '/t/1')).toBeNull();
  });

  it('a * segment in the middle matches across slashes', () => {
    const r = router([{ id: 'mid', uris: ['/a/*/b/:id'] }, { id: 'named', uris: ['/n/*rest/end'] }]);
    expect(r.match(input({ path: '/a/x/y/b/7' }))?.params).toEqual({ id: '7' });
    expect(hit(r, '/a/x/y/c/7')).toBeNull();
    expect(r.match(input({ path: '/n/p/q/end' }))?.params).toEqual({ rest: 'p/q' });
  });

  it('a : or * inside a segment is literal, the key still cuts there (radixtree)', () => {
    const r = router([
      { id: 'colon', uris: ['/a:b/:id'] },
      { id: 'ver', uris: ['/api/v:ver'] },
    ]);
    expect(r.match(input({ path: '/a:b/5' }))?.params).toEqual({ id: '5' });
    expect(hit(r, '/axb/5')).toBeNull();
    expect(hit(r, '/a:c/5')).toBeNull();
    // no segment starts with : or *, so it is a plain prefix match on "/api/v"
    expect(hit(r, '/api/v2/anything')).toBe('ver');
  });

  it('bare * prefix routes capture nothing; exact routes have null params', () => {
    const r = router([{ id: 'p', uris: ['/p/*'] }, { id: 'e', uris: ['/e'] }]);
    expect(r.match(input({ path: '/p/x' }))?.params).toBeNull();
    expect(r.match(input({ path: '/e' }))?.params).toBeNull();
  });

  it('routes under the same key: priority, then longer uri, then insertion order', () => {
    const r = router([
      { id: 'star', uris: ['/u/*'] },
      { id: 'param', uris: ['/u/:id'] },
      { id: 'deep', uris: ['/u/:id/profile'] },
    ]);
    expect(hit(r, '/u/1')).toBe('param');
    expect(hit(r, '/u/1/profile')).toBe('deep');
    expect(hit(r, '/u/1/other')).toBe('star');

    const p = router([
      { id: 'low', uris: ['/u/:id'] },
      { id: 'high', uris: ['/u/*'], priority: 10 },
    ]);
    expect(hit(p, '/u/1')).toBe('high');

    const same = router([
      { id: 'first', uris: ['/x'] },
      { id: 'second', uris: ['/x'] },
      { id: 'third', uris: ['/x'], priority: 1 },
    ]);
    expect(hit(same, '/x')).toBe('third');
    const order = router([
      { id: 'first', uris: ['/x'] },
      { id: 'second', uris: ['/x'] },
    ]);
    expect(hit(order, '/x')).toBe('first');
  });

  it('a failing candidate falls through to the next one', () => {
    const r = router([
      { id: 'exact-post', uris: ['/a/b'], methods: ['POST'] },
      { id: 'long', uris: ['/a/b*'], methods: ['PUT'] },
      { id: 'short', uris: ['/a/*'] },
    ]);
    expect(hit(r, { path: '/a/b', method: 'POST' })).toBe('exact-post');
    expect(hit(r, { path: '/a/b', method: 'PUT' })).toBe('long');
    expect(hit(r, { path: '/a/b', method: 'GET' })).toBe('short');
  });

  it('several uris per route', () => {
    const r = router([{ id: 'multi', uris: ['/one', '/two/*', '/three/:x'] }]);
    expect(hit(r, '/one')).toBe('multi');
    expect(hit(r, '/two/2')).toBe('multi');
    expect(r.match(input({ path: '/three/3' }))?.params).toEqual({ x: '3' });
    expect(r.size).toBe(1);
  });

  it('an empty router never matches', () => {
    const r = router([]);
    expect(hit(r, '/')).toBeNull();
    expect(r.size).toBe(0);
  });
});

describe('methods', () => {
  it('restricts by method; empty list means any', () => {
    const r = router([
      { id: 'get', uris: ['/m'], methods: ['GET', 'HEAD'] },
      { id: 'any', uris: ['/any'], methods: [] },
    ]);
    expect(hit(r, { path: '/m', method: 'GET' })).toBe('get');
    expect(hit(r, { path: '/m', method: 'HEAD' })).toBe('get');
    expect(hit(r, { path: '/m', method: 'POST' })).toBeNull();
    expect(hit(r, { path: '/m', method: 'BREW' })).toBeNull();
    expect(hit(r, { path: '/any', method: 'BREW' })).toBe('any');
    expect(hit(r, { path: '/any', method: 'PURGE' })).toBe('any');
  });
});

describe('hosts', () => {
  it('exact and wildcard hosts', () => {
    const r = router([
      { id: 'exact', uris: ['/h'], hosts: ['foo.com'] },
      { id: 'wild', uris: ['/h'], hosts: ['*.foo.com'] },
    ]);
    expect(hit(r, { path: '/h', host: 'foo.com' })).toBe('exact');
    expect(hit(r, { path: '/h', host: 'a.foo.com' })).toBe('wild');
    expect(hit(r, { path: '/h', host: 'a.b.foo.com' })).toBe('wild');
    expect(hit(r, { path: '/h', host: 'xfoo.com' })).toBeNull();
    expect(hit(r, { path: '/h', host: 'bar.com' })).toBeNull();
  });

  it('host routes are tried before host-less routes, even with a shorter path', () => {
    const r = router([
      { id: 'nohost-exact', uris: ['/api/v1'], priority: 100 },
      { id: 'host-prefix', uris: ['/*'], hosts: ['foo.com'] },
    ]);
    expect(hit(r, { path: '/api/v1', host: 'foo.com' })).toBe('host-prefix');
    expect(hit(r, { path: '/api/v1', host: 'bar.com' })).toBe('nohost-exact');
  });

  it('falls back from a host group to wildcard groups and then host-less routes', () => {
    const r = router([
      { id: 'exact-host', uris: ['/only'], hosts: ['a.foo.com'] },
      { id: 'long-wild', uris: ['/x/*'], hosts: ['*.a.foo.com'] },
      { id: 'short-wild', uris: ['/x/*', '/y'], hosts: ['*.foo.com'] },
      { id: 'star', uris: ['/y', '/z'], hosts: ['*'] },
      { id: 'nohost', uris: ['/*'] },
    ]);
    expect(hit(r, { path: '/only', host: 'a.foo.com' })).toBe('exact-host');
    expect(hit(r, { path: '/x/1', host: 'a.foo.com' })).toBe('short-wild');
    expect(hit(r, { path: '/x/1', host: 'b.a.foo.com' })).toBe('long-wild');
    expect(hit(r, { path: '/y', host: 'b.a.foo.com' })).toBe('short-wild');
    expect(hit(r, { path: '/z', host: 'b.a.foo.com' })).toBe('star');
    expect(hit(r, { path: '/z', host: 'other.org' })).toBe('star');
    expect(hit(r, { path: '/w', host: 'b.a.foo.com' })).toBe('nohost');
  });

  it('route hosts compare case-insensitively; several hosts per route', () => {
    const r = router([{ id: 'multi', uris: ['/c'], hosts: ['Foo.COM', '*.Bar.com'] }]);
    expect(hit(r, { path: '/c', host: 'foo.com' })).toBe('multi');
    expect(hit(r, { path: '/c', host: 'x.bar.com' })).toBe('multi');
    expect(hit(r, { path: '/c', host: 'bar.com' })).toBeNull();
  });

  it('service hosts passed as the spec hosts behave like route hosts', () => {
    // The caller resolves `route.hosts ?? route.host ?? service.hosts` into RouteSpec.hosts.
    const r = router([
      { id: 'svc-route', uris: ['/s'], hosts: ['svc.example'] },
      { id: 'plain', uris: ['/s'] },
    ]);
    expect(hit(r, { path: '/s', host: 'svc.example' })).toBe('svc-route');
    expect(hit(r, { path: '/s', host: 'other.example' })).toBe('plain');
  });

  it('an empty host list means any host', () => {
    const r = router([{ id: 'e', uris: ['/e'], hosts: [] }]);
    expect(hit(r, { path: '/e', host: 'whatever' })).toBe('e');
  });
});

describe('remote_addrs', () => {
  it('IPv4 and IPv6 addresses and CIDRs', () => {
    const r = router([
      { id: 'v4', uris: ['/r'], remoteAddrs: ['192.168.0.0/16', '127.0.0.1'] },
      { id: 'v6', uris: ['/r'], remoteAddrs: ['fe80::/32', '::1'] },
    ]);
    expect(hit(r, { path: '/r', remoteAddr: '192.168.3.4' })).toBe('v4');
    expect(hit(r, { path: '/r', remoteAddr: '127.0.0.1' })).toBe('v4');
    expect(hit(r, { path: '/r', remoteAddr: '::ffff:127.0.0.1' })).toBe('v4');
    expect(hit(r, { path: '/r', remoteAddr: 'fe80::abcd' })).toBe('v6');
    expect(hit(r, { path: '/r', remoteAddr: '::1' })).toBe('v6');
    expect(hit(r, { path: '/r', remoteAddr: '10.0.0.1' })).toBeNull();
    expect(hit(r, { path: '/r', remoteAddr: '2001::1' })).toBeNull();
  });
});

describe('vars', () => {
  it('filters with the expression language and falls through on failure', () => {
    const r = router([
      { id: 'json', uris: ['/v'], vars: [['arg_fmt', '==', 'json'], ['http_x_version', '>=', 2]] },
      {
        id: 'or',
        uris: ['/v'],
        vars: ['OR', ['arg_a', '==', '1'], ['!AND', ['arg_b', '==', '1'], ['arg_c', '==', '1']]],
      },
      { id: 'fallback', uris: ['/v'] },
    ]);
    expect(hit(r, { path: '/v', vars: { arg_fmt: 'json', http_x_version: '3' } })).toBe('json');
    expect(hit(r, { path: '/v', vars: { arg_fmt: 'json', http_x_version: '1', arg_a: '1' } })).toBe('or');
    expect(hit(r, { path: '/v', vars: { arg_b: '1', arg_c: '1' } })).toBe('fallback');
    expect(hit(r, { path: '/v', vars: { arg_b: '1' } })).toBe('or');
  });

  it('an empty vars array always matches', () => {
    const r = router([{ id: 'e', uris: ['/e'], vars: [] }]);
    expect(hit(r, '/e')).toBe('e');
  });

  it('uri_param_<name> in vars sees the candidate route params', () => {
    const r = router([
      { id: 'admin', uris: ['/user/:name'], vars: [['uri_param_name', '==', 'admin']] },
      { id: 'num', uris: ['/user/:name'], vars: [['uri_param_name', '~~', '^[0-9]+$']] },
      { id: 'other', uris: ['/user/*'] },
    ]);
    expect(hit(r, '/user/admin')).toBe('admin');
    expect(hit(r, '/user/42')).toBe('num');
    const inp = input({ path: '/user/bob' });
    expect(r.match(inp)?.routeId).toBe('other');
    expect(inp.params).toBeNull();
  });

  it('input.params holds the matched route params after a hit, null after a miss', () => {
    const r = router([{ id: 'p', uris: ['/p/:id'] }]);
    const inp = input({ path: '/p/9' });
    expect(r.match(inp)?.params).toEqual({ id: '9' });
    expect(inp.params).toEqual({ id: '9' });
    const miss = input({ path: '/q' });
    miss.params = { stale: 'x' };
    expect(r.match(miss)).toBeNull();
    expect(miss.params).toBeNull();
  });

  it('ipmatch on remote_addr in vars', () => {
    const r = router([{ id: 'ip', uris: ['/i'], vars: [['remote_addr', 'ipmatch', ['10.0.0.0/8']]] }]);
    expect(hit(r, { path: '/i', vars: { remote_addr: '10.2.3.4' } })).toBe('ip');
    expect(hit(r, { path: '/i', vars: { remote_addr: '11.2.3.4' } })).toBeNull();
  });
});

describe('bad specs', () => {
  it('are skipped and reported through errors and onError', () => {
    const seen: Array<[string, string]> = [];
    const r = buildRouter(
      [
        { id: 'bad-vars', uris: ['/a'], vars: [['x', 'xx', 1]], priority: 0, payload: 1 },
        { id: 'bad-cidr', uris: ['/a'], remoteAddrs: ['10.0.0.0/40'], priority: 0, payload: 2 },
        { id: 'bad-host', uris: ['/a'], hosts: ['a.*.com'], priority: 0, payload: 3 },
        { id: 'bad-method', uris: ['/a'], methods: ['FETCH'], priority: 0, payload: 4 },
        { id: 'no-uri', uris: [], priority: 0, payload: 5 },
        { id: 'good', uris: ['/a'], priority: 0, payload: 6 },
      ],
      { onError: (id, msg) => seen.push([id, msg]) },
    );
    expect(r.size).toBe(1);
    expect(r.match(input({ path: '/a' }))?.routeId).toBe('good');
    expect(r.errors.map((e) => e.id)).toEqual(['bad-vars', 'bad-cidr', 'bad-host', 'bad-method', 'no-uri']);
    expect(seen.length).toBe(5);
    expect(r.errors[0].message).toBe("failed to validate the 'vars' expression: invalid operator 'xx'");
    expect(r.errors[1].message).toBe('invalid ip address: 10.0.0.0/40');
    expect(r.errors[2].message).toBe("invalid host 'a.*.com'");
    expect(r.errors[3].message).toBe("invalid method 'FETCH'");
  });
});

describe('scale', () => {
  it('matches correctly among many routes', () => {
    const specs: Spec[] = [];
    for (let i = 0; i < 2000; i++) {
      specs.push({ id: `e${i}`, uris: [`/svc${i}/items`] });
      specs.push({ id: `p${i}`, uris: [`/svc${i}/items/:id`], methods: ['GET'] });
      specs.push({ id: `x${i}`, uris: [`/svc${i}/static/*`], hosts: i % 2 ? [`h${i}.example.com`] : undefined });
    }
    const r = router(specs);
    expect(r.size).toBe(6000);
    for (let i = 0; i < 2000; i += 97) {
      expect(hit(r, `/svc${i}/items`)).toBe(`e${i}`);
      expect(r.match(input({ path: `/svc${i}/items/abc` }))?.params).toEqual({ id: 'abc' });
      expect(hit(r, { path: `/svc${i}/items/abc`, method: 'POST' })).toBeNull();
      expect(hit(r, { path: `/svc${i}/static/a/b`, host: `h${i}.example.com` })).toBe(`x${i}`);
      expect(hit(r, { path: `/svc${i}/static/a/b` })).toBe(i % 2 ? null : `x${i}`);
    }
    expect(hit(r, '/svc99999/items')).toBeNull();
  });
});
