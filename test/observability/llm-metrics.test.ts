// The LLM metrics of APISIX's exporter (3.14+ names, 3.18 semantics) and the batch processor metrics, read
// from the gateway's exporter after real traffic: ai-proxy against an OpenAI-compatible fixture (JSON and SSE
// with a usage chunk), http-logger against a port nobody listens on. Every value asserted comes from the
// fixture's usage numbers or from requests this test makes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { find, scrape, value, type Sample } from './prom-text.ts';

describe('LLM and batch processor metrics', () => {
  let gw: TestGateway;
  let llm: LlmFixture;
  let up: EchoServer;
  let metricsUrl = '';
  const metrics = (): Promise<Sample[]> => scrape(metricsUrl);
  const chat = (body: Record<string, unknown>) =>
    fetch(`${gw.url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], ...body }) });

  beforeAll(async () => {
    [gw, llm, up] = await Promise.all([startTestGateway(), startLlmFixture('llm'), startEcho('logged')]);
    metricsUrl = `http://127.0.0.1:${(gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port}/apisix/prometheus/metrics`;
    await gw.put('/routes/chat', {
      uri: '/chat',
      plugins: {
        prometheus: {},
        'ai-proxy': { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, options: { model: 'served-model' }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } },
      },
    });
    const dead = await freePort();
    await gw.put('/routes/logged', {
      uri: '/logged',
      upstream: { nodes: { [up.addr]: 1 } },
      plugins: { prometheus: {}, 'http-logger': { uri: `http://127.0.0.1:${dead}/`, batch_max_size: 1, max_retry_count: 0, timeout: 1 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
    await up?.close();
  });

  it('counts tokens and latency of chat and streamed completions with the request type and models as labels', async () => {
    llm.usage = { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 };
    let r = await chat({ model: 'asked-model' });
    expect(r.status).toBe(200);
    await r.text();
    llm.usage = { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 };
    r = await chat({ model: 'asked-model', stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('[DONE]');
    const m = await metrics();
    const chatLabels = { route_id: 'chat', request_type: 'ai_chat', request_llm_model: 'asked-model', llm_model: 'served-model' };
    const streamLabels = { ...chatLabels, request_type: 'ai_stream' };
    expect(value(m, 'apisix_llm_prompt_tokens', chatLabels)).toBe(11);
    expect(value(m, 'apisix_llm_completion_tokens', chatLabels)).toBe(5);
    expect(value(m, 'apisix_llm_prompt_tokens', streamLabels)).toBe(3);
    expect(value(m, 'apisix_llm_completion_tokens', streamLabels)).toBe(2);
    expect(value(m, 'apisix_llm_prompt_tokens_dist_count', chatLabels)).toBe(1);
    expect(value(m, 'apisix_llm_prompt_tokens_dist_bucket', { ...chatLabels, le: '10' })).toBe(0);
    expect(value(m, 'apisix_llm_prompt_tokens_dist_bucket', { ...chatLabels, le: '50' })).toBe(1);
    expect(value(m, 'apisix_llm_completion_tokens_dist_sum', streamLabels)).toBe(2);
    // total for both; ttft only for the stream.
    expect(value(m, 'apisix_llm_latency_count', { ...chatLabels, type: 'total' })).toBe(1);
    expect(find(m, 'apisix_llm_latency_count', { ...chatLabels, type: 'ttft' })).toHaveLength(0);
    expect(value(m, 'apisix_llm_latency_count', { ...streamLabels, type: 'total' })).toBe(1);
    expect(value(m, 'apisix_llm_latency_count', { ...streamLabels, type: 'ttft' })).toBe(1);
    // The request metrics carry the same labels; the connection is no longer active.
    expect(value(m, 'apisix_http_status', { route: 'chat', code: '200', request_type: 'ai_stream', llm_model: 'served-model' })).toBe(1);
    expect(value(m, 'apisix_llm_active_connections', { route_id: 'chat', request_type: 'ai_chat' })).toBe(0);
  });

  it('reports an LLM request as active while its answer streams', async () => {
    llm.eventDelayMs = 300;
    try {
      const r = await chat({ model: 'asked-model', stream: true });
      expect(r.status).toBe(200);
      const during = await metrics();
      expect(value(during, 'apisix_llm_active_connections', { route_id: 'chat', request_type: 'ai_stream' })).toBe(1);
      await r.text();
      const after = await metrics();
      expect(value(after, 'apisix_llm_active_connections', { route_id: 'chat', request_type: 'ai_stream' })).toBe(0);
    } finally {
      llm.eventDelayMs = 0;
    }
  });

  it('failed LLM answers count tokens as zero and stay out of llm_latency', async () => {
    const before = await metrics();
    const total0 = value(before, 'apisix_llm_latency_count', { route_id: 'chat', request_type: 'ai_chat', type: 'total' });
    llm.mode = 500;
    try {
      const r = await chat({ model: 'asked-model' });
      expect(r.status).toBe(500);
      await r.text();
    } finally {
      llm.mode = 'ok';
    }
    const m = await metrics();
    expect(value(m, 'apisix_llm_latency_count', { route_id: 'chat', request_type: 'ai_chat', type: 'total' })).toBe(total0);
    expect(value(m, 'apisix_http_status', { route: 'chat', code: '500', request_type: 'ai_chat' })).toBe(1);
  });

  it('non-AI requests are traditional_http; a dead log receiver raises the dropped-entries counter', async () => {
    const dropped0 = value(await metrics(), 'apisix_batch_process_dropped_entries_total', { name: 'http-logger' });
    for (let i = 0; i < 5; i++) expect((await fetch(`${gw.url}/logged`)).status).toBe(200);
    await waitFor(async () => value(await metrics(), 'apisix_batch_process_dropped_entries_total', { name: 'http-logger' }) - dropped0 >= 5, 8000, 50);
    const m = await metrics();
    expect(value(m, 'apisix_http_status', { route: 'logged', request_type: 'traditional_http', llm_model: '', response_source: 'upstream' })).toBe(5);
    expect(find(m, 'apisix_batch_process_entries', { name: 'http-logger' }).length).toBeGreaterThan(0);
  });
});
