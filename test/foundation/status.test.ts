// The status API: /status is liveness, /status/ready follows the readiness source (503 with the reason).
import { describe, expect, it } from 'vitest';
import { createStatusServer } from '../../src/runtime/status-server.ts';
import { get } from './cli-helpers.ts';

describe('status server', () => {
  it('answers /status always and /status/ready by the readiness source', async () => {
    let reason: string | null = 'config store not synced';
    const srv = createStatusServer('127.0.0.1', 0, { notReadyReason: () => reason });
    const port = await srv.listen();
    try {
      const base = `http://127.0.0.1:${port}`;
      expect((await get(`${base}/status`)).status).toBe(200);
      const notReady = await get(`${base}/status/ready`);
      expect(notReady.status).toBe(503);
      expect(JSON.parse(notReady.body)).toEqual({ status: 'error', error: 'config store not synced' });
      reason = null;
      const ready = await get(`${base}/status/ready?x=1`);
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.body)).toEqual({ status: 'ok' });
      expect((await get(`${base}/status/ready`, { method: 'HEAD' })).status).toBe(200);
      expect((await get(`${base}/status`, { method: 'POST' })).status).toBe(405);
      expect((await get(`${base}/other`)).status).toBe(404);
    } finally {
      await srv.close();
    }
  });
});
