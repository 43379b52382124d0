import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiPromptGuardPlugin } from '../../src/plugin/builtin/ai-prompt-guard.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { confError } from '../plugin/helpers.ts';

const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('ai-prompt-decorator, ai-prompt-template, ai-prompt-guard', () => {
  let gw: TestGateway;
  let llm: LlmFixture;

  beforeAll(async () => {
    [gw, llm] = await Promise.all([startTestGateway(), startLlmFixture('llm')]);
    const proxy = { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } };
    await gw.put('/routes/deco', {
      uri: '/deco',
      plugins: {
        'ai-proxy': proxy,
        'ai-prompt-decorator': { prepend: [{ role: 'system', content: 'be brief' }], append: [{ role: 'user', content: 'end' }] },
      },
    });
    await gw.put('/routes/tpl', {
      uri: '/tpl',
      plugins: {
        'ai-proxy': proxy,
        'ai-prompt-template': {
          templates: [{ name: 'explain', template: { model: 'm1', messages: [{ role: 'user', content: 'Explain {{ topic }} to a {{ level }}' }] } }],
        },
      },
    });
    await gw.put('/routes/guard', {
      uri: '/guard',
      plugins: { 'ai-proxy': proxy, 'ai-prompt-guard': { allow_patterns: ['weather'], deny_patterns: ['password'] } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
  });

  it('decorates the messages the provider receives', async () => {
    llm.requests.length = 0;
    const r = await post(`${gw.url}/deco`, { messages: [{ role: 'user', content: 'hi' }] });
    expect(r.status).toBe(200);
    expect(llm.requests[0]!.body.messages).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
      { role: 'user', content: 'end' },
    ]);
  });

  it('renders a named template with the body fields (quotes stay valid JSON)', async () => {
    llm.requests.length = 0;
    const r = await post(`${gw.url}/tpl`, { template_name: 'explain', topic: 'the "TCP" handshake', level: 'child' });
    expect(r.status).toBe(200);
    expect(llm.requests[0]!.body).toMatchObject({ model: 'm1', messages: [{ role: 'user', content: 'Explain the "TCP" handshake to a child' }] });
    let bad = await post(`${gw.url}/tpl`, { topic: 'x' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ message: 'template name is missing in request.' });
    bad = await post(`${gw.url}/tpl`, { template_name: 'nope' });
    expect(await bad.json()).toEqual({ message: 'template: nope not configured.' });
  });

  it('guards prompts with allow and deny patterns', async () => {
    llm.requests.length = 0;
    let r = await post(`${gw.url}/guard`, { messages: [{ role: 'user', content: 'tell me a joke' }] });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ message: "Request doesn't match allow patterns" });
    r = await post(`${gw.url}/guard`, { messages: [{ role: 'user', content: 'weather and my password' }] });
    expect(await r.json()).toEqual({ message: 'Request contains prohibited content' });
    expect(llm.requests.length).toBe(0);
    r = await post(`${gw.url}/guard`, { messages: [{ role: 'user', content: 'weather today?' }] });
    expect(r.status).toBe(200);
    expect(confError(aiPromptGuardPlugin, { deny_patterns: ['('] })).toMatch(/invalid deny_pattern/);
  });
});
