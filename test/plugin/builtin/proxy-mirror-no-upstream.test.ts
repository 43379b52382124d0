// proxy-mirror mirrors only requests that go to an upstream (APISIX: nginx's mirror runs at the proxy stage):
// not a route without an upstream, not a route whose plugin calls its backend itself (ai-proxy).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../../helpers/llm-fixture.ts';
import { waitFor } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';

describe('proxy-mirror without an upstream', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let mirror: EchoServer;
  let llm: LlmFixture;

  beforeAll(async () => {
    [gw, up, mirror, llm] = await Promise.all([startTestGateway(), startEcho('main'), startEcho('mirror'), startLlmFixture('llm')]);
    const pm = { 'proxy-mirror': { host: `http://${mirror.addr}` } };
    await gw.put('/routes/none', { uri: '/none', plugins: pm });
    const ai = { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } };
    await gw.put('/routes/ai', { uri: '/ai', plugins: { ...pm, 'ai-proxy': ai } });
    await gw.put('/routes/proxied', { uri: '/proxied', plugins: pm, upstream: { nodes: { [up.addr]: 1 } } });
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([up?.close(), mirror?.close(), llm?.close()]);
  });

  it('mirrors neither a route without an upstream nor an ai-proxy route, only the proxied one', async () => {
    const none = await fetch(`${gw.url}/none`);
    expect(none.status).toBeGreaterThanOrEqual(500);
    await none.text();
    const ai = await fetch(`${gw.url}/ai`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(ai.status).toBe(200);
    await ai.text();
    expect(llm.requests).toHaveLength(1);
    // The proxied request is mirrored after the two others: once its copy arrived, theirs would have too.
    const proxied = await fetch(`${gw.url}/proxied`);
    expect(proxied.status).toBe(200);
    await proxied.text();
    await waitFor(() => mirror.seen.length > 0, 5_000, 20);
    expect(mirror.seen.map((s) => s.url)).toEqual(['/proxied']);
  });
});
