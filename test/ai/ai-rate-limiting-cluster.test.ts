// ai-rate-limiting's local policy through the real CLI with 2 workers, each driven alone in turn
// (test/plugin/counters/workers.ts): one token budget for the node, charged by both workers through the cluster
// primary's counters (incrBy), as APISIX's shared dict counts for every nginx worker.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { admin, get, killAll, type Reply } from '../foundation/cli-helpers.ts';
import { waitFor } from '../helpers/proc.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { only, startNode, workerPids, type Node } from '../plugin/counters/workers.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

let node: Node;
let llm: LlmFixture;

beforeAll(async () => {
  [node, llm] = await Promise.all([startNode(2), startLlmFixture('llm')]);
});

afterAll(async () => {
  await killAll();
  await llm?.close();
  await node?.cleanup();
});

const body = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] });
const post = (key: string): Promise<Reply> =>
  get(`http://127.0.0.1:${node.p.http}/chat`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-key': key }, body });
// The charge goes to the primary from the log phase, after the answer; let it land before the other worker asks.
const settle = () => new Promise((r) => setTimeout(r, 100));

describe('ai-rate-limiting local policy across 2 workers of one node', () => {
  it('one token budget: what worker A spent is refused on worker B', async () => {
    const proxy = { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } };
    // Keyed by x-key so the readiness probes (random keys) never charge the budget of `k`.
    const limiting = { rules: [{ count: 25, time_window: 60, key: '$http_x_key', header_prefix: 'k' }] };
    expect((await admin(node.p, 'PUT', '/routes/chat', { uri: '/chat', plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': limiting } })).status).toBeLessThan(300);
    const [a, b] = await workerPids(node);
    expect(b).toBeDefined();
    for (const pid of [a!, b!]) {
      await only(node, pid, () => waitFor(async () => (await post(`probe-${Math.random()}`)).status === 200, 20_000, 50));
    }
    llm.usage = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
    const seen: { status: number; remaining: unknown }[] = [];
    const send = async (pid: number) => {
      const r = await only(node, pid, () => post('k'));
      seen.push({ status: r.status, remaining: r.headers['x-ai-k-ratelimit-remaining'] });
      await settle();
    };
    await send(a!);
    await send(a!);
    await send(b!);
    await send(b!);
    await send(a!);
    // 25 tokens: 0 and 10 spent on A, 20 seen by B (5 left), then 30 spent: refused on both workers.
    expect(seen).toEqual([
      { status: 200, remaining: '25' },
      { status: 200, remaining: '15' },
      { status: 200, remaining: '5' },
      { status: 503, remaining: '0' },
      { status: 503, remaining: '0' },
    ]);
  });
});
