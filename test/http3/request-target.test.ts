// RFC 9114 4.3.1: :path is origin-form, or `*` for OPTIONS. An absolute-form :path used to reach the pipeline,
// which routes an absolute-form target's authority: a request on a connection whose SNI had no client.ca could
// name a host whose ssl object requires client certificates (the SNI-vs-Host rule checked :authority). No QUIC
// client here sends a custom :path, so the field-to-request step is driven alone.
import { describe, expect, it } from 'vitest';
import { H3Request } from '../../protocols/http3/request.ts';

type Built = { target: string; authority: string };
const build = (H3Request.prototype as unknown as { buildRequest(this: unknown, f: [string, string][]): Built }).buildRequest;
const self = { host: { remoteAddr: '127.0.0.1', remotePort: 1, serverAddr: '127.0.0.1', serverPort: 2, tlsFor: () => null }, expectedLength: -1 };

function fields(method: string, path: string): [string, string][] {
  return [[':method', method], [':scheme', 'https'], [':path', path], [':authority', 'open.test']];
}

describe('HTTP/3 :path forms', () => {
  it('origin-form and OPTIONS * are requests', () => {
    expect(build.call(self, fields('GET', '/private?x=1')).target).toBe('/private?x=1');
    expect(build.call(self, fields('OPTIONS', '*')).target).toBe('*');
  });

  it('absolute-form, authority-form and `*` on other methods are malformed (stream error H3_MESSAGE_ERROR)', () => {
    for (const [method, path] of [['GET', 'https://m.test/private'], ['GET', 'http://m.test'], ['GET', 'm.test:443'], ['GET', '*']]) {
      expect(() => build.call(self, fields(method!, path!)), `${method} ${path}`).toThrow(/bad :path/);
    }
  });
});
