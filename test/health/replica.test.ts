// Worker-side replica: applies the primary's broadcasts and full state, and forwards only the passive
// outcomes that can change the primary's counters.
import { describe, expect, it } from 'vitest';
import { HealthReplica, type WorkerHealthMessage } from '../../src/health/replica.ts';
import { ALL_HEALTHY } from '../../src/upstream/balancer.ts';

const conf = {
  nodes: { '127.0.0.1:1': 1, '127.0.0.1:2': 1 },
  checks: { passive: { healthy: { http_statuses: [200] }, unhealthy: { http_statuses: [500] } } },
};

describe('HealthReplica', () => {
  it('follows changes, full state and drops', () => {
    const sent: WorkerHealthMessage[] = [];
    const r = new HealthReplica((m) => sent.push(m));
    r.hello();
    expect(sent).toEqual([{ type: 'health-hello' }]);
    expect(r.view('upstreams/x', { nodes: {} })).toBe(ALL_HEALTHY);
    const v = r.view('upstreams/1', conf);
    expect(r.handle({ type: 'health', key: 'upstreams/1', endpoint: '127.0.0.1:1', healthy: false })).toBe(true);
    expect(v.isHealthy('127.0.0.1:1')).toBe(false);
    r.handle({ type: 'health-state', state: [['upstreams/1', ['127.0.0.1:2']]] });
    expect([v.isHealthy('127.0.0.1:1'), v.isHealthy('127.0.0.1:2')]).toEqual([true, false]);
    r.handle({ type: 'health-drop', key: 'upstreams/1' });
    expect(v.isHealthy('127.0.0.1:2')).toBe(true);
    expect(r.handle({ type: 'ready' })).toBe(false);
  });

  it('forwards failures, and successes only when they can matter', () => {
    const sent: WorkerHealthMessage[] = [];
    const r = new HealthReplica((m) => sent.push(m));
    r.view('upstreams/1', conf);
    r.reportStatus('upstreams/1', '127.0.0.1:1', 200);
    expect(sent).toHaveLength(0);
    r.reportStatus('upstreams/1', '127.0.0.1:1', 500);
    r.reportStatus('upstreams/1', '127.0.0.1:1', 200);
    r.reportStatus('upstreams/1', '127.0.0.1:1', 200);
    r.reportFailure('upstreams/1', '127.0.0.1:1', 'timeout');
    r.reportStatus('upstreams/1', '127.0.0.1:1', 404);
    r.reportStatus('upstreams/2', '127.0.0.1:1', 500);
    expect(sent).toEqual([
      { type: 'health-report', key: 'upstreams/1', endpoint: '127.0.0.1:1', status: 500 },
      { type: 'health-report', key: 'upstreams/1', endpoint: '127.0.0.1:1', status: 200 },
      { type: 'health-report', key: 'upstreams/1', endpoint: '127.0.0.1:1', kind: 'timeout' },
    ]);
    sent.length = 0;
    r.handle({ type: 'health', key: 'upstreams/1', endpoint: '127.0.0.1:2', healthy: false });
    r.reportStatus('upstreams/1', '127.0.0.1:2', 200);
    expect(sent).toEqual([{ type: 'health-report', key: 'upstreams/1', endpoint: '127.0.0.1:2', status: 200 }]);
  });
});
