// Tokens of a stream the client left: the provider's usage chunk (sent last) never comes, so the gateway
// estimates prompt and completion tokens (characters / 4) and ai-rate-limiting, the access log and the llm_*
// variables still see a value. Also: the LLM variables in access_log_format for a complete answer.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startLlmFixture, type LlmFixture } from '../helpers/llm-fixture.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

// 40 characters: an estimate of 10 prompt tokens.
const PROMPT = 'abcd'.repeat(10);
const chat = (stream: boolean, tag: string) => JSON.stringify({ model: tag, messages: [{ role: 'user', content: PROMPT }], stream });

describe('token usage when the client leaves mid-stream', () => {
  let gw: TestGateway;
  let llm: LlmFixture;
  let logFile: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const t = await tempDir('swy-ai-abort-');
    cleanup = t.cleanup;
    logFile = path.join(t.dir, 'access.log');
    llm = await startLlmFixture('llm');
    gw = await startTestGateway({
      config: {
        switchyard: {
          worker_processes: 1,
          access_log: { enable: true, path: logFile, format: '$request_llm_model $status $llm_prompt_tokens $llm_completion_tokens $llm_total_tokens ttft=$llm_time_to_first_token' },
        },
      },
    });
    const proxy = { provider: 'openai-compatible', auth: { header: { Authorization: 'Bearer k' } }, override: { endpoint: `${llm.endpoint}/v1/chat/completions` } };
    // Total budget 11: the estimate of one aborted stream (10 prompt + at least 1 completion) spends it.
    await gw.put('/routes/total', { uri: '/total', plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': { limit: 11, time_window: 60 } } });
    // Completion budget 2: "Hello" (5 characters, 2 tokens) relayed before the client left spends it.
    await gw.put('/routes/completion', {
      uri: '/completion',
      plugins: { 'ai-proxy': proxy, 'ai-rate-limiting': { limit: 2, time_window: 60, limit_strategy: 'completion_tokens' } },
    });
    await gw.put('/routes/plain', { uri: '/plain', plugins: { 'ai-proxy': proxy } });
  });
  afterAll(async () => {
    await gw?.close();
    await llm?.close();
    await cleanup?.();
  });

  /** Sends a streaming chat and hangs up on the first SSE event. */
  async function leaveAfterFirstEvent(p: string, tag: string): Promise<void> {
    const before = llm.aborted;
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${gw.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.setTimeout(5000, () => reject(new Error('no first event')));
      req.end(chat(true, tag));
    });
    await llm.waitAborted(before + 1);
  }

  const post = (p: string, tag: string) =>
    fetch(`${gw.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(false, tag) });

  const logLine = (tag: string): Promise<string> =>
    waitFor(async () => {
      const text = await readFile(logFile, 'utf8').catch(() => '');
      return text.split('\n').find((l) => l.startsWith(`${tag} `));
    }, 5000, 20) as Promise<string>;

  it('an aborted stream still spends the budget: the next request is rejected with 503', async () => {
    llm.eventDelayMs = 300;
    llm.words = ['Hello', ' there', ' and', ' more', ' words'];
    try {
      await leaveAfterFirstEvent('/total', 'abort-total');
      // The log line is written in the log phase, after the charge: once it is there, the budget is spent.
      const line = await logLine('abort-total');
      const [, , prompt, completion, total] = line.split(' ');
      expect(Number(prompt)).toBe(10);
      expect(Number(completion)).toBeGreaterThanOrEqual(2);
      expect(Number(total)).toBe(Number(prompt) + Number(completion));
      const next = await post('/total', 'after-total');
      expect(next.status).toBe(503);

      await leaveAfterFirstEvent('/completion', 'abort-completion');
      await logLine('abort-completion');
      expect((await post('/completion', 'after-completion')).status).toBe(503);
    } finally {
      llm.eventDelayMs = 0;
      llm.words = ['Hello', ' from', ' llm'];
    }
  });

  it('a complete answer logs the provider usage and the time to first token in access_log_format', async () => {
    llm.usage = { prompt_tokens: 21, completion_tokens: 4, total_tokens: 25 };
    llm.headerDelayMs = 30;
    try {
      expect((await post('/plain', 'complete')).status).toBe(200);
    } finally {
      llm.headerDelayMs = 0;
    }
    const line = await logLine('complete');
    const m = /^complete 200 21 4 25 ttft=(\d+)$/.exec(line);
    expect(m, line).not.toBeNull();
    // The first byte came after the provider's 30 ms head delay.
    expect(Number(m![1])).toBeGreaterThanOrEqual(30);
  });
});
