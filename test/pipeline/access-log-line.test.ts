// The JSON access log line's `time`: cached per millisecond and its date-and-second prefix per second, it must
// still be what Date.toISOString gives for the clock of each line, across millisecond, second, day and year
// boundaries. The clock is vitest's fake Date; the expected value comes from Date itself. The durations
// (request_time, upstream_response_time) are printed from integers: they must read exactly as JavaScript prints
// the same number.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { AccessLog, decimal } from '../../src/pipeline/access-log.ts';
import { RequestContext } from '../../src/pipeline/context.ts';

afterEach(() => {
  vi.useRealTimers();
});

function ctx(): RequestContext {
  return new RequestContext({
    method: 'GET', path: '/', forwardPath: '/', query: '', rawUri: '/', headers: { host: 'a.example' },
    remoteAddr: '127.0.0.1', remotePort: 40000, serverAddr: '127.0.0.1', serverPort: 9080, scheme: 'http', httpVersion: '1.1',
    host: 'a.example', tls: null,
  });
}

describe('AccessLog.line time', () => {
  test('equals Date.toISOString at every step of a clock crossing ms, second, day and year boundaries', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const c = ctx();
    const starts = [Date.UTC(2026, 11, 7, 5, 4, 35, 998), Date.UTC(2026, 11, 31, 23, 59, 59, 997), Date.UTC(2027, 0, 1, 0, 0, 0, 0)];
    // Steps of 0 (same millisecond), 1, 999 and 1000 ms, and a jump back (a clock set backwards).
    const steps = [0, 1, 1, 1, 999, 1000, 0, 7, -1500, 1];
    for (const start of starts) {
      let t = start;
      for (const step of steps) {
        t += step;
        vi.setSystemTime(t);
        const line = JSON.parse(AccessLog.line(c, 0)) as { time: string };
        expect(line.time).toBe(new Date(t).toISOString());
      }
    }
  });
});

describe('AccessLog.line durations', () => {
  test('decimal(units, 3 | 6) prints units / 10^digits as String(number) does', () => {
    const units: number[] = [];
    for (let u = 0; u < 200_000; u++) units.push(u);
    // Larger values, seeded so a failure repeats: whole seconds up to days, with every fraction shape.
    let seed = 12345;
    for (let i = 0; i < 200_000; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      units.push(seed * 97 + (i % 1000));
    }
    for (const u of units) {
      expect(decimal(u, 6)).toBe(String(u / 1e6));
      expect(decimal(u, 3)).toBe(String(u / 1000));
    }
  });

  test('request_time and upstream_response_time in a line are JSON numbers of the durations', () => {
    const c = ctx();
    c.upstreamLatencyMs = 12.4;
    const line = JSON.parse(AccessLog.line(c, 0)) as { request_time: number; upstream_response_time: number };
    expect(line.upstream_response_time).toBe(0.012);
    expect(line.request_time).toBeGreaterThanOrEqual(0);
    expect(line.request_time).toBeLessThan(60);
  });
});
