// Dubbo call metrics cost nothing per call until the Prometheus metrics exist: the metrics module does not
// subscribe to the call channel (so the proxy allocates no message for it), and a session's series cache
// answers null. Once they exist, a session reuses its series per route/service/method.
import { channel } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { DubboSeriesCache, gatewayMetrics, MAX_DUBBO_SERIES } from '../../src/observability/metrics.ts';
import { renderText } from '../../src/observability/registry.ts';

describe('dubbo call metrics', () => {
  it('nothing listens per call before the metrics exist; a session then reuses its series', async () => {
    const cache = new DubboSeriesCache();
    expect(channel('switchyard:dubbo:call').hasSubscribers).toBe(false);
    expect(cache.get('r', 'S', 'm')).toBeNull();
    const m = gatewayMetrics();
    const s = cache.get('r', 'S', 'm');
    expect(s).not.toBeNull();
    expect(cache.get('r', 'S', 'm')).toBe(s);
    expect(new DubboSeriesCache().get('r', 'S', 'm')).toBe(s);
    expect(cache.get('r', 'S', 'other')).not.toBe(s);
    s!.record('20', 5);
    s!.record('20', 7);
    s!.record('exception', 1);
    const text = renderText(await m.registry.snapshot());
    expect(text).toMatch(/dubbo_calls_total\{route="r",service="S",method="m",status="20"\} 2\n/);
    expect(text).toMatch(/dubbo_calls_total\{route="r",service="S",method="m",status="exception"\} 1\n/);
    expect(text).toMatch(/dubbo_calls_latency_seconds_count\{route="r",service="S",method="m"\} 3\n/);
    // Client-chosen names past the bound share the "_other" series.
    for (let i = 0; i < MAX_DUBBO_SERIES + 5; i++) cache.get('r', 'S', `m${i}`);
    expect(cache.get('r', 'S', `new-name`)).toBe(cache.get('r', 'S', 'another-new-name'));
    expect(channel('switchyard:dubbo:call').hasSubscribers).toBe(false);
  });
});
