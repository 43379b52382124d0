import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiProxyMultiPlugin as def } from '../../src/plugin/builtin/ai-proxy-multi.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { confError } from '../plugin/helpers.ts';

const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
const post = (url: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('ai-proxy-multi', () => {
  let gw: TestGateway;
  let a: LlmFixture;
  let b: LlmFixture;
  let c: LlmFixture;

  const instance = (name: string, fx: LlmFixture, extra: Record<string, unknown> = {}) => ({
    name,
    provider: 'openai-compatible',
    weight: 1,
    auth: { header: { Authorization: `Bearer key-${name}` } },
    override: { endpoint: `${fx.endpoint}/v1/chat/completions` },
    ...extra,
  });

  beforeAll(async () => {
    gw = await startTestGateway();
    [a, b, c] = await Promise.all([startLlmFixture('a'), startLlmFixture('b'), startLlmFixture('c')]);
    await gw.put('/routes/fallback', {
      uri: '/fallback',
      plugins: {
        'ai-proxy-multi': {
          fallback_strategy: ['http_429', 'http_5xx'],
          instances: [instance('a', a, { priority: 10 }), instance('b', b, { priority: 5 }), instance('c', c, { priority: 0 })],
        },
      },
    });
    await gw.put('/routes/nofallback', {
      uri: '/nofallback',
      plugins: { 'ai-proxy-multi': { instances: [instance('a', a, { priority: 10 }), instance('b', b)] } },
    });
    await gw.put('/routes/rr', {
      uri: '/rr',
      plugins: { 'ai-proxy-multi': { instances: [instance('a', a, { weight: 3 }), instance('b', b, { weight: 1 })] } },
    });
    await gw.put('/routes/budget', {
      uri: '/budget',
      plugins: {
        'ai-proxy-multi': {
          fallback_strategy: 'instance_health_and_rate_limiting',
          instances: [instance('a', a, { priority: 10 }), instance('b', b)],
        },
        'ai-rate-limiting': { instances: [{ name: 'a', limit: 10, time_window: 60 }] },
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  const reset = () => {
    for (const fx of [a, b, c]) {
      fx.mode = 'ok';
      fx.requests.length = 0;
    }
  };

  it('validates confs', () => {
    const ok = { instances: [{ name: 'x', provider: 'openai', weight: 1, auth: {} }] };
    expect(confError(def, ok)).toBeNull();
    expect(confError(def, { instances: [] })).not.toBeNull();
    expect(confError(def, { ...ok, fallback_strategy: 'sometimes' })).not.toBeNull();
    expect(confError(def, { instances: [ok.instances[0], ok.instances[0]] })).toMatch(/duplicate/);
  });

  it('falls back by priority: 429 then 500 lead to the third instance, each with its own key', async () => {
    reset();
    a.mode = 429;
    b.mode = 500;
    const r = await post(`${gw.url}/fallback`);
    expect(r.status).toBe(200);
    expect(((await r.json()) as any).choices[0].message.content).toBe('Hello from c');
    expect([a.requests.length, b.requests.length, c.requests.length]).toEqual([1, 1, 1]);
    expect(a.requests[0]!.headers.authorization).toBe('Bearer key-a');
    expect(c.requests[0]!.headers.authorization).toBe('Bearer key-c');
  });

  it('answers 502 with the last provider error when every instance fails', async () => {
    reset();
    a.mode = 429;
    b.mode = 500;
    c.mode = 500;
    const r = await post(`${gw.url}/fallback`);
    expect(r.status).toBe(502);
    expect(((await r.json()) as any).error.message).toBe('c says 500');
  });

  it('the highest priority serves again once it recovers', async () => {
    reset();
    const r = await post(`${gw.url}/fallback`);
    expect(((await r.json()) as any).choices[0].message.content).toBe('Hello from a');
    expect(b.requests.length + c.requests.length).toBe(0);
  });

  it('without fallback_strategy the provider error reaches the client', async () => {
    reset();
    a.mode = 429;
    const r = await post(`${gw.url}/nofallback`);
    expect(r.status).toBe(429);
    expect(b.requests.length).toBe(0);
  });

  it('balances by weight within a priority', async () => {
    reset();
    for (let i = 0; i < 8; i++) await (await post(`${gw.url}/rr`)).text();
    expect(a.requests.length).toBe(6);
    expect(b.requests.length).toBe(2);
  });

  it('active health checks: an unhealthy instance is skipped (not tried) and serves again once healthy', async () => {
    const [h1, h2] = await Promise.all([startLlmFixture('h1'), startLlmFixture('h2')]);
    try {
      const active = { type: 'http', http_path: '/health', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } };
      await gw.put('/routes/health', {
        uri: '/health-route',
        plugins: {
          'ai-proxy-multi': {
            instances: [
              instance('h1', h1, { priority: 10, auth: { header: { Authorization: 'Bearer key-h1' }, query: { api_key: 'q1' } }, checks: { active } }),
              instance('h2', h2, { priority: 0 }),
            ],
          },
        },
      });
      const served = async () => {
        const r = await post(`${gw.url}/health-route`);
        return r.status === 200 ? (((await r.json()) as any).choices[0].message.content as string) : `status ${r.status}`;
      };
      expect(await served()).toBe('Hello from h1');
      // Probes authenticate like requests: the instance's auth header and query args.
      await expect.poll(() => h1.requests.filter((q) => q.method === 'GET').length, { timeout: 5000, interval: 50 }).toBeGreaterThan(0);
      const probe = h1.requests.find((q) => q.method === 'GET')!;
      expect(probe.url).toBe('/health?api_key=q1');
      expect(probe.headers.authorization).toBe('Bearer key-h1');
      // Without a fallback_strategy a 500 reaches the client: only the health check can move traffic to h2.
      h1.mode = 500;
      await expect.poll(served, { timeout: 8000, interval: 100 }).toBe('Hello from h2');
      const chats = () => h1.requests.filter((q) => q.method === 'POST').length;
      const before = chats();
      for (let i = 0; i < 3; i++) expect(await served()).toBe('Hello from h2');
      expect(chats()).toBe(before);
      h1.mode = 'ok';
      await expect.poll(served, { timeout: 8000, interval: 100 }).toBe('Hello from h1');
    } finally {
      await gw.admin('DELETE', '/routes/health');
      await gw.synced();
      await Promise.all([h1.close(), h2.close()]);
    }
  });

  it('validates checks.active with the upstream health checker schema', () => {
    const ins = { name: 'x', provider: 'openai', weight: 1, auth: {} };
    expect(confError(def, { instances: [{ ...ins, checks: { active: { http_path: '/h' } } }] })).toBeNull();
    expect(confError(def, { instances: [{ ...ins, checks: {} }] })).not.toBeNull();
    expect(confError(def, { instances: [{ ...ins, checks: { active: { healthy: { interval: 0 } } } }] })).not.toBeNull();
  });

  it('skips an instance whose token budget is spent (instance_health_and_rate_limiting)', async () => {
    reset();
    a.usage = { prompt_tokens: 8, completion_tokens: 4, total_tokens: 12 };
    let r = await post(`${gw.url}/budget`);
    expect(((await r.json()) as any).choices[0].message.content).toBe('Hello from a');
    r = await post(`${gw.url}/budget`);
    expect(((await r.json()) as any).choices[0].message.content).toBe('Hello from b');
    expect(a.requests.length).toBe(1);
  });
});
