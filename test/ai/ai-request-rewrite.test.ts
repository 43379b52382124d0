import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aiRequestRewritePlugin as def } from '../../src/plugin/builtin/ai-request-rewrite.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { confError } from '../plugin/helpers.ts';

const SECRET = 'sk-rewrite-never-echo';

/** An upstream that keeps every body it receives. */
async function startBodyUpstream(): Promise<{ addr: string; bodies: string[]; headers: http.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const server = http.createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    bodies.push(Buffer.concat(parts).toString('utf8'));
    headers.push(req.headers);
    res.end('upstream ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return { addr: `127.0.0.1:${port}`, bodies, headers, close: () => new Promise((r) => server.close(() => r())) };
}

describe('ai-request-rewrite', () => {
  let gw: TestGateway;
  let llm: LlmFixture;
  let up: Awaited<ReturnType<typeof startBodyUpstream>>;

  beforeAll(async () => {
    [gw, llm, up] = await Promise.all([startTestGateway(), startLlmFixture('llm'), startBodyUpstream()]);
    const conf = {
      prompt: 'redact the card numbers',
      provider: 'openai-compatible',
      auth: { header: { Authorization: `Bearer ${SECRET}` } },
      override: { endpoint: `${llm.endpoint}/v1/chat/completions` },
      options: { model: 'rewriter', temperature: 0.1 },
    };
    await gw.put('/routes/rw', { uri: '/rw', plugins: { 'ai-request-rewrite': conf }, upstream: { type: 'roundrobin', nodes: { [up.addr]: 1 } } });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
    await up?.close();
  });

  it('validates confs as APISIX', () => {
    const auth = { header: { Authorization: 'Bearer t' } };
    expect(confError(def, { prompt: 'p', provider: 'openai', auth })).toBeNull();
    expect(confError(def, { provider: 'openai', auth })).not.toBeNull();
    expect(confError(def, { prompt: 'p', provider: 'openai' })).not.toBeNull();
    expect(confError(def, { prompt: 'p', auth })).not.toBeNull();
    expect(confError(def, { prompt: 'p', provider: 'nope', auth })).not.toBeNull();
    expect(confError(def, { prompt: 'p', provider: 'openai-compatible', auth })).toMatch(/override.endpoint is required for openai-compatible provider$/);
    expect(confError(def, { prompt: 'p', provider: 'openai', auth, timeout: 60001 })).not.toBeNull();
  });

  it('sends prompt + body to the LLM with its own auth only, and forwards the answer upstream', async () => {
    llm.requests.length = 0;
    llm.words = ['card ', '****'];
    const r = await fetch(`${gw.url}/rw`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', authorization: 'Bearer client-token', 'x-client': 'c1' },
      body: 'my card is 4111 1111 1111 1111',
    });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('upstream ok');
    expect(llm.requests).toHaveLength(1);
    const seen = llm.requests[0]!;
    expect(seen.url).toBe('/v1/chat/completions');
    expect(seen.body).toEqual({
      messages: [
        { role: 'system', content: 'redact the card numbers' },
        { role: 'user', content: 'my card is 4111 1111 1111 1111' },
      ],
      stream: false,
      model: 'rewriter',
      temperature: 0.1,
    });
    expect(seen.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(seen.headers['x-client']).toBeUndefined();
    // The upstream gets the LLM's text instead of the client's body; the client's own headers still go there.
    expect(up.bodies.at(-1)).toBe('card ****');
    expect(up.headers.at(-1)!.authorization).toBe('Bearer client-token');
    expect(up.headers.at(-1)!['content-length']).toBe(String(Buffer.byteLength('card ****')));
    llm.words = ['Hello', ' from', ' llm'];
  });

  it('answers 400 without a body and 500 when the LLM fails, never reaching the upstream', async () => {
    const before = up.bodies.length;
    let r = await fetch(`${gw.url}/rw`, { method: 'POST', headers: { 'content-type': 'text/plain' } });
    expect(r.status).toBe(400);
    await r.text();
    llm.mode = 500;
    r = await fetch(`${gw.url}/rw`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(r.status).toBe(500);
    const text = await r.text();
    expect(text).not.toContain(SECRET);
    llm.mode = 429;
    r = await fetch(`${gw.url}/rw`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(r.status).toBe(500);
    await r.text();
    llm.mode = 'ok';
    expect(up.bodies.length).toBe(before);
  });

  it('a client that leaves while the LLM works cancels the LLM request', async () => {
    llm.headerDelayMs = 4000;
    llm.requests.length = 0;
    const before = llm.aborted;
    const req = http.request(`${gw.url}/rw`, { method: 'POST', headers: { 'content-type': 'text/plain' } });
    req.on('error', () => undefined);
    req.end('some text');
    const until = Date.now() + 3000;
    while (llm.requests.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(llm.requests).toHaveLength(1);
    req.destroy();
    await llm.waitAborted(before + 1, 2000);
    expect(llm.aborted).toBe(before + 1);
    llm.headerDelayMs = 0;
  });
});
