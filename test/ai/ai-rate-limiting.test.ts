import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiRateLimitingPlugin as def } from '../../src/plugin/builtin/ai-rate-limiting.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { startRedis, type RedisPeer } from '../plugin/counters/redis-peers.ts';
import { confError } from '../plugin/helpers.ts';

const chat = (stream = false) => JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream });
const post = (url: string, stream = false, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: chat(stream) });

describe('ai-rate-limiting', () => {
  let gw: TestGateway;
  let gw2: TestGateway;
  let llm: LlmFixture;
  let redis: RedisPeer;

  beforeAll(async () => {
    [gw, gw2, llm, redis] = await Promise.all([startTestGateway(), startTestGateway(), startLlmFixture('llm'), startRedis()]);
    const proxy = { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } };
    await gw.put('/routes/total', { uri: '/total', plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': { limit: 25, time_window: 60 } } });
    await gw.put('/routes/completion', {
      uri: '/completion',
      plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': { limit: 5, time_window: 60, limit_strategy: 'completion_tokens', rejected_code: 429, rejected_msg: 'token budget spent' } },
    });
    await gw.put('/routes/stream', { uri: '/stream', plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': { limit: 15, time_window: 60 } } });
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await gw.put('/consumers/rose', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
    await gw.put('/routes/per-consumer', {
      uri: '/per-consumer',
      plugins: {
        'key-auth': {},
        'ai-proxy': proxy,
        'ai-rate-limiting': { rules: [{ count: 10, time_window: 60, key: '$consumer_name', header_prefix: 'consumer' }] },
      },
    });
    const shared = { id: 'shared', uri: '/shared', plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': { limit: 25, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port } } };
    await gw.put('/routes/shared', shared);
    await gw2.put('/routes/shared', shared);
  });
  afterAll(async () => {
    await Promise.all([gw?.close(), gw2?.close()]);
    await llm?.close();
    await redis?.stop();
  });

  it('validates confs as APISIX', () => {
    expect(confError(def, { limit: 10, time_window: 60 })).toBeNull();
    expect(confError(def, { limit: 10 })).not.toBeNull();
    expect(confError(def, { instances: [{ name: 'a', limit: 1, time_window: 1 }] })).toBeNull();
    expect(confError(def, { limit: 1, time_window: 1, limit_strategy: 'expression' })).toMatch(/cost_expr is required/);
  });

  it('charges total_tokens from the provider usage and rejects once the budget is spent (503, headers)', async () => {
    llm.usage = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await post(`${gw.url}/total`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-ai-ratelimit-limit-ai-proxy-openai-compatible')).toBe('25');
      remaining.push(r.headers.get('x-ai-ratelimit-remaining-ai-proxy-openai-compatible')!);
      await r.text();
    }
    expect(remaining).toEqual(['25', '15', '5']);
    const before = llm.requests.length;
    const r = await post(`${gw.url}/total`);
    expect(r.status).toBe(503);
    expect(r.headers.get('x-ai-ratelimit-remaining-ai-proxy-openai-compatible')).toBe('0');
    await r.text();
    expect(llm.requests.length).toBe(before);
  });

  it('limit_strategy completion_tokens with rejected_code and rejected_msg', async () => {
    llm.usage = { prompt_tokens: 50, completion_tokens: 3, total_tokens: 53 };
    expect((await post(`${gw.url}/completion`)).status).toBe(200);
    expect((await post(`${gw.url}/completion`)).status).toBe(200);
    const r = await post(`${gw.url}/completion`);
    expect(r.status).toBe(429);
    expect(await r.json()).toEqual({ error_msg: 'token budget spent' });
  });

  it('counts streamed usage chunks', async () => {
    llm.usage = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 };
    for (let i = 0; i < 2; i++) {
      const r = await post(`${gw.url}/stream`, true);
      expect(r.status).toBe(200);
      expect(await r.text()).toContain('[DONE]');
    }
    const r = await post(`${gw.url}/stream`, true);
    expect(r.status).toBe(503);
    await r.text();
  });

  it('rules keyed by consumer keep separate budgets', async () => {
    llm.usage = { prompt_tokens: 6, completion_tokens: 6, total_tokens: 12 };
    const jack = { apikey: 'jack-key' };
    let r = await post(`${gw.url}/per-consumer`, false, jack);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-ai-consumer-ratelimit-limit')).toBe('10');
    await r.text();
    r = await post(`${gw.url}/per-consumer`, false, jack);
    expect(r.status).toBe(503);
    await r.text();
    r = await post(`${gw.url}/per-consumer`, false, { apikey: 'rose-key' });
    expect(r.status).toBe(200);
    await r.text();
  });

  it('the redis policy shares one budget between two gateways', async () => {
    llm.usage = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
    expect((await post(`${gw.url}/shared`)).status).toBe(200);
    expect((await post(`${gw2.url}/shared`)).status).toBe(200);
    expect((await post(`${gw.url}/shared`)).status).toBe(200);
    const r = await post(`${gw2.url}/shared`);
    expect(r.status).toBe(503);
    const c = new Redis({ host: '127.0.0.1', port: redis.port });
    try {
      const keys = await c.keys('plugin-ai-rate-limiting:*');
      expect(keys.length).toBe(1);
      expect(await c.get(keys[0]!)).toBe('30');
    } finally {
      c.disconnect();
    }
  });
});
