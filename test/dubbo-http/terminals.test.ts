// The upstream-caller seam: protocols/dubbo registers its caller through the composition root, once per
// process however many gateways start, and a second, different caller for the same protocol is refused.
import { describe, expect, it } from 'vitest';
import { dubboUpstreamCaller } from '../../protocols/dubbo/index.ts';
import { UpstreamCallers, upstreamCallers, type DubboCaller } from '../../src/plugin/terminals.ts';
import { startTestGateway } from '../helpers/gateway.ts';

describe('upstream callers', () => {
  it('registers the same caller idempotently and refuses another one', () => {
    const reg = new UpstreamCallers();
    expect(reg.get('dubbo')).toBeUndefined();
    reg.register('dubbo', dubboUpstreamCaller);
    reg.register('dubbo', dubboUpstreamCaller);
    expect(reg.get('dubbo')).toBe(dubboUpstreamCaller);
    const other: DubboCaller = { invoke: () => Promise.reject(new Error('unused')), exchange: () => Promise.reject(new Error('unused')) };
    expect(() => reg.register('dubbo', other)).toThrow(/registered twice/);
  });

  it('is filled by the composition root for every gateway of the process', async () => {
    const a = await startTestGateway();
    const b = await startTestGateway();
    try {
      expect(upstreamCallers.get('dubbo')).toBe(dubboUpstreamCaller);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
