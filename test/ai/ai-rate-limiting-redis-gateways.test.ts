// One token budget across 2 gateway PROCESSES (the real CLI, one worker each) sharing one redis-server: the
// ai-rate-limiting redis policy charges the provider's usage in the log phase and every process's dry run in
// access reads the same counter. Requests alternate between the processes; the exact 200/503 sequence and the
// Redis counter after each are checked.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { admin, baseConfig, get, killAll, ports, startCli, writeConfig, type Ports } from '../foundation/cli-helpers.ts';
import { startRedis, type RedisPeer } from '../plugin/counters/redis-peers.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

let llm: LlmFixture;
let redis: RedisPeer;
let client: Redis;
let gws: Ports[] = [];
const cleanups: (() => Promise<void>)[] = [];

async function startOne(): Promise<Ports> {
  const { dir, cleanup } = await tempDir('swy-ai-redis-gw-');
  cleanups.push(cleanup);
  const p = await ports();
  await startCli(await writeConfig(dir, baseConfig(p)), p.status);
  return p;
}

beforeAll(async () => {
  [llm, redis] = await Promise.all([startLlmFixture('llm'), startRedis()]);
  client = new Redis({ host: '127.0.0.1', port: redis.port });
  // One at a time: two processes starting together on a loaded 2-core machine can miss the start deadline.
  gws = [await startOne(), await startOne()];
});

afterAll(async () => {
  client?.disconnect();
  await killAll();
  await llm?.close();
  await redis?.stop();
  for (const c of cleanups) await c();
});

const chat = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });

async function counter(): Promise<number | null> {
  const keys = await client.keys('plugin-ai-rate-limiting:*');
  if (keys.length === 0) return null;
  expect(keys).toHaveLength(1);
  return Number(await client.get(keys[0]!));
}

describe('ai-rate-limiting redis policy across 2 gateway processes', () => {
  it('a budget of 25 tokens at 10 per request: 200, 200, 200, then 503 on both processes; Redis holds 30', async () => {
    const route = {
      uri: '/llm',
      plugins: {
        'ai-proxy': { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } },
        'ai-rate-limiting': { limit: 25, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port },
      },
    };
    for (const p of gws) expect((await admin(p, 'PUT', '/routes/llm', route)).status).toBeLessThan(300);
    // Each process serves the route before the measured sequence starts (no request reaches the provider).
    for (const p of gws) {
      await waitFor(async () => (await get(`http://127.0.0.1:${p.http}/llm`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })).status === 400, 10_000, 50);
    }
    expect(llm.requests).toHaveLength(0);
    expect(await counter()).toBeNull();

    llm.usage = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
    const statuses: number[] = [];
    const remaining: (string | undefined)[] = [];
    const counters: (number | null)[] = [];
    for (let i = 0; i < 6; i++) {
      const p = gws[i % 2]!;
      const r = await get(`http://127.0.0.1:${p.http}/llm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat });
      statuses.push(r.status);
      remaining.push(r.headers['x-ai-ratelimit-remaining-ai-proxy-openai-compatible'] as string | undefined);
      // The charge is written in the log phase, after the answer: the next request must see it, so wait for it.
      const want = Math.min(3, i + 1) * 10;
      counters.push((await waitFor(async () => ((await counter()) === want ? want : undefined), 5000, 10)) ?? null);
    }
    expect(statuses).toEqual([200, 200, 200, 503, 503, 503]);
    expect(remaining).toEqual(['25', '15', '5', '0', '0', '0']);
    expect(counters).toEqual([10, 20, 30, 30, 30, 30]);
    expect(llm.requests).toHaveLength(3);
    const keys = await client.keys('plugin-ai-rate-limiting:*');
    expect(await client.pttl(keys[0]!)).toBeGreaterThan(0);
  });
});
