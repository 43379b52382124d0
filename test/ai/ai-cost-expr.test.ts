// ai-rate-limiting limit_strategy "expression": cost_expr compiled at check time by a small arithmetic parser
// (no eval) and evaluated over the provider's raw usage.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiRateLimitingPlugin as def } from '../../src/plugin/builtin/ai-rate-limiting.ts';
import { compileCostExpr } from '../../src/plugin/builtin/ai/cost-expr.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { confError } from '../plugin/helpers.ts';

const cost = (src: string, usage: Record<string, unknown>) => compileCostExpr(src).evaluate(usage);

describe('cost_expr', () => {
  it('evaluates arithmetic with Lua precedence over usage fields', () => {
    const u = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
    expect(cost('prompt_tokens + completion_tokens * 4', u)).toBe(19);
    expect(cost('(prompt_tokens + completion_tokens) * 4', u)).toBe(40);
    expect(cost('total_tokens / 4', u)).toBe(3); // 2.5 rounds half up
    expect(cost('total_tokens / 3', u)).toBe(3);
    expect(cost('-2^2 + 10', u)).toBe(6);
    expect(cost('2^3^2', u)).toBe(512);
    expect(cost('7 % 3 + 1e1', u)).toBe(11);
    expect(cost('max(prompt_tokens, completion_tokens * 5) + min(1, 2) + abs(-1) + floor(1.7) + math.ceil(0.2)', u)).toBe(19);
    expect(cost('completion_tokens - prompt_tokens', u)).toBe(0); // negative costs nothing
    expect(cost('unknown_field + 1', u)).toBe(1); // missing fields are 0
    expect(cost('prompt_tokens / 0', u)).toBe('cost_expr returned non-finite value');
  });

  it('reads nested fields by path, and bare names level by level (the larger value on a clash)', () => {
    const u = {
      input_tokens: 100,
      output_tokens: 20,
      prompt_tokens_details: { cached_tokens: 40, audio_tokens: 1 },
      completion_tokens_details: { reasoning_tokens: 5, audio_tokens: 3 },
      deep: { a: { only_deep: 9 } },
    };
    expect(cost('input_tokens - prompt_tokens_details.cached_tokens + output_tokens', u)).toBe(80);
    expect(cost('reasoning_tokens * 2', u)).toBe(10);
    expect(cost('audio_tokens', u)).toBe(3);
    expect(cost('only_deep', u)).toBe(9);
    expect(cost('deep.a.missing + deep.x.y', u)).toBe(0);
    // Inherited properties are not usage fields.
    expect(cost('constructor + toString.length + deep.constructor.length', u)).toBe(0);
  });

  it('refuses what is not arithmetic over fields, at check time', () => {
    const bad = (src: string) => confError(def, { limit: 10, time_window: 60, limit_strategy: 'expression', cost_expr: src });
    expect(bad('prompt_tokens + completion_tokens')).toBeNull();
    expect(bad('prompt_tokens +')).toMatch(/err: invalid cost_expr: unexpected end of expression$/);
    expect(bad('(prompt_tokens')).toMatch(/invalid cost_expr: expected '\)'/);
    expect(bad('prompt_tokens; os.exit()')).toMatch(/invalid cost_expr: unexpected character ';'/);
    expect(bad('process.exit(1)')).toMatch(/invalid cost_expr: unknown function process\.exit/);
    expect(bad('constructor(1)')).toMatch(/unknown function constructor/);
    expect(bad('__proto__(1) + toString(2)')).toMatch(/unknown function __proto__/);
    expect(bad('a..b')).toMatch(/invalid cost_expr/);
    expect(bad('abs(1, 2)')).toMatch(/wrong number of arguments/);
    expect(bad('"text"')).toMatch(/unexpected character/);
    expect(bad('2x')).toMatch(/unexpected character 'x'/);
    expect(bad('('.repeat(100) + '1' + ')'.repeat(100))).toMatch(/nested too deeply/);
    expect(confError(def, { limit: 10, time_window: 60, limit_strategy: 'expression' })).toMatch(/cost_expr is required/);
  });
});

describe('ai-rate-limiting with limit_strategy expression through the gateway', () => {
  let gw: TestGateway;
  let llm: LlmFixture;

  beforeAll(async () => {
    [gw, llm] = await Promise.all([startTestGateway(), startLlmFixture('llm')]);
    const proxy = { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } };
    await gw.put('/routes/expr', {
      uri: '/expr',
      plugins: {
        'ai-proxy': proxy,
        'ai-rate-limiting': {
          limit: 30,
          time_window: 60,
          limit_strategy: 'expression',
          cost_expr: 'prompt_tokens - prompt_tokens_details.cached_tokens + completion_tokens * 4',
        },
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
  });

  it('charges the expression over the raw usage: 200, 200, then 503', async () => {
    // 9 - 2 + 3 * 4 = 19 per request (total_tokens would be 12: a third request would pass).
    (llm as { usage: unknown }).usage = { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12, prompt_tokens_details: { cached_tokens: 2 } };
    const statuses: number[] = [];
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${gw.url}/expr`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
      });
      await r.text();
      statuses.push(r.status);
      remaining.push(r.headers.get('x-ai-ratelimit-remaining-ai-proxy-openai-compatible'));
    }
    expect(statuses).toEqual([200, 200, 503]);
    expect(remaining).toEqual(['30', '11', '0']);
  });
});
