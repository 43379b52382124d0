// The Dubbo codec against independent references: frames written by the codec are checked byte by byte
// against the layout of the Dubbo and Hessian 2 specifications and decoded with hessian.js directly; frames
// assembled by hand from those specifications are decoded by the codec. The streaming decoder is checked
// for every split of a multi-frame input, byte-at-a-time delivery and bad input.
import hessian from 'hessian.js';
import { describe, expect, it } from 'vitest';
import {
  Status,
  countParams,
  decodeRequestBody,
  decodeRequestHead,
  decodeResponse,
  encodeErrorResponse,
  encodeHeartbeat,
  encodeHeartbeatResponse,
  encodeRequest,
  encodeResponse,
} from '../../protocols/dubbo/codec.ts';
import { FrameDecoder } from '../../protocols/dubbo/frame-decoder.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** Hessian 2 short string: one length byte (< 32) then UTF-8. */
const hstr = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]);
const header = (flags: number, status: number, id: number, len: number) => {
  const h = Buffer.alloc(16);
  h.set([0xda, 0xbb, flags, status]);
  h.writeUInt32BE(id, 8);
  h.writeUInt32BE(len, 12);
  return h;
};
const withHeader = (flags: number, status: number, id: number, body: Buffer) => Buffer.concat([header(flags, status, id, body.length), body]);
/** Untyped map {dubbo: "2.0.2"}: 'H' key value 'Z'. */
const ATT = Buffer.concat([Buffer.from('H'), hstr('dubbo'), hstr('2.0.2'), Buffer.from('Z')]);

function single(buf: Buffer) {
  const d = new FrameDecoder();
  d.push(buf);
  const s = d.next();
  if (s.kind !== 'frame') throw new Error(`expected a frame, got ${JSON.stringify(s)}`);
  return s.frame;
}

describe('dubbo codec: frames written', () => {
  it('writes request frames with the spec layout and a body hessian.js reads back', () => {
    const f = encodeRequest(0x0102030405n, {
      service: 'org.apache.dubbo.backend.DemoService',
      version: '1.0.0',
      method: 'hello',
      paramTypes: 'Ljava/lang/String;I',
      args: ['zhangsan', 7],
      attachments: { timeout: '1000' },
    });
    expect(f.subarray(0, 4)).toEqual(hex('dabb c2 00'));
    expect(f.subarray(4, 12)).toEqual(hex('0000000102030405'));
    expect(f.readUInt32BE(12)).toBe(f.length - 16);
    // Body starts with the short string "2.0.2", then the 36-char service path as a medium string
    // (0x30 + high bits of the length, then its low byte 0x24).
    expect(f.subarray(16, 22)).toEqual(hstr('2.0.2'));
    expect(f.subarray(22, 24)).toEqual(hex('30 24'));
    expect(f.subarray(24, 60).toString()).toBe('org.apache.dubbo.backend.DemoService');
    const d = new hessian.DecoderV2(f.subarray(16));
    expect([d.read(), d.read(), d.read(), d.read(), d.read(), d.read(), d.read()]).toEqual([
      '2.0.2',
      'org.apache.dubbo.backend.DemoService',
      '1.0.0',
      'hello',
      'Ljava/lang/String;I',
      'zhangsan',
      7,
    ]);
    expect(d.read()).toEqual({
      timeout: '1000',
      path: 'org.apache.dubbo.backend.DemoService',
      interface: 'org.apache.dubbo.backend.DemoService',
      version: '1.0.0',
    });
  });

  it('writes heartbeats and their answers exactly as the spec', () => {
    expect(encodeHeartbeat(0x34n)).toEqual(hex('dabb e2 00 0000000000000034 00000001 4e'));
    expect(encodeHeartbeatResponse(0x34n)).toEqual(hex('dabb 22 14 0000000000000034 00000001 4e'));
  });

  it('writes every response type', () => {
    expect(encodeResponse(1n, { kind: 'value', value: 'hi' })).toEqual(withHeader(0x02, 20, 1, hex('91 02 6869')));
    expect(encodeResponse(1n, { kind: 'value', value: 'hi', attachments: { dubbo: '2.0.2' } })).toEqual(withHeader(0x02, 20, 1, Buffer.concat([hex('94 02 6869'), ATT])));
    expect(encodeResponse(1n, { kind: 'null' })).toEqual(withHeader(0x02, 20, 1, hex('92')));
    expect(encodeResponse(1n, { kind: 'null', attachments: { dubbo: '2.0.2' } })).toEqual(withHeader(0x02, 20, 1, Buffer.concat([hex('95'), ATT])));
    const ex = { $class: 'java.lang.RuntimeException', $: { detailMessage: 'boom' } };
    const exFrame = encodeResponse(1n, { kind: 'exception', exception: ex });
    expect(exFrame.subarray(16, 17)).toEqual(hex('90'));
    const exAtt = encodeResponse(1n, { kind: 'exception', exception: ex, attachments: { dubbo: '2.0.2' } });
    const d = new hessian.DecoderV2(exAtt.subarray(16));
    expect(d.read()).toBe(3);
    const thrown = d.read() as Error;
    expect(thrown.name).toBe('java.lang.RuntimeException');
    expect(thrown.message).toBe('boom');
    expect(d.read()).toEqual({ dubbo: '2.0.2' });
    expect(encodeErrorResponse(9n, Status.SERVICE_ERROR, 'oops!')).toEqual(withHeader(0x02, 70, 9, hstr('oops!')));
  });
});

describe('dubbo codec: hand-assembled frames read', () => {
  it('reads a request body (head, parameter descriptor, arguments, attachments)', () => {
    const body = Buffer.concat([
      hstr('2.0.2'),
      hstr('demo.Svc'),
      hstr('1.0'),
      hstr('add'),
      hstr('IJLjava/lang/String;'),
      hex('95'), // int 5 (compact: 0x90 + v)
      hex('e7'), // long 7 (compact: 0xe0 + v)
      hstr('x'),
      Buffer.from('H'),
      hstr('path'),
      hstr('demo.Svc'),
      Buffer.from('Z'),
    ]);
    const f = single(withHeader(0xc2, 0, 3, body));
    expect(f).toMatchObject({ flags: 0xc2, requestId: 3n, bodyLength: body.length });
    expect(decodeRequestHead(f.body)).toEqual({ ok: true, value: { dubboVersion: '2.0.2', service: 'demo.Svc', version: '1.0', method: 'add' } });
    const r = decodeRequestBody(f.body);
    expect(r.ok && r.value.args).toEqual([5, 7, 'x']);
    expect(r.ok && r.value.attachments).toEqual({ path: 'demo.Svc' });
  });

  it('reads each response type', () => {
    const ok = (body: Buffer) => {
      const f = single(withHeader(0x02, 20, 1, body));
      return decodeResponse(f.status, f.body);
    };
    expect(ok(hex('91 02 6869'))).toEqual({ ok: true, value: { kind: 'value', value: 'hi', attachments: {} } });
    expect(ok(Buffer.concat([hex('94 9f'), ATT]))).toEqual({ ok: true, value: { kind: 'value', value: 15, attachments: { dubbo: '2.0.2' } } });
    expect(ok(hex('92'))).toEqual({ ok: true, value: { kind: 'null', attachments: {} } });
    expect(ok(Buffer.concat([hex('95'), ATT]))).toEqual({ ok: true, value: { kind: 'null', attachments: { dubbo: '2.0.2' } } });
    // Class definition 'C' name, 1 field "detailMessage", then instance 0x60 of it.
    const exObj = Buffer.concat([Buffer.from('C'), hstr('java.lang.RuntimeException'), hex('91'), hstr('detailMessage'), hex('60'), hstr('boom')]);
    const exception = { className: 'java.lang.RuntimeException', message: 'boom' };
    expect(ok(Buffer.concat([hex('90'), exObj]))).toEqual({ ok: true, value: { kind: 'exception', exception, attachments: {} } });
    expect(ok(Buffer.concat([hex('93'), exObj, ATT]))).toEqual({ ok: true, value: { kind: 'exception', exception, attachments: { dubbo: '2.0.2' } } });
    const st = single(withHeader(0x02, 60, 1, hstr('no such service')));
    expect(decodeResponse(st.status, st.body)).toEqual({ ok: true, value: { kind: 'status', status: 60, message: 'no such service' } });
    expect(ok(hex('99')).ok).toBe(false);
    expect(ok(hex('91')).ok).toBe(false);
  });

  it('counts JVM parameter descriptors', () => {
    expect(countParams('')).toBe(0);
    expect(countParams('Ljava/lang/String;[IJ[[Lx;')).toBe(4);
    expect(countParams('Ljava/lang/String')).toBe(null);
    expect(countParams('Q')).toBe(null);
  });
});

describe('dubbo frame decoder', () => {
  const frames = [encodeHeartbeat(1n), encodeResponse(2n, { kind: 'value', value: 'x'.repeat(300) }), encodeErrorResponse(3n, 40, 'bad'), encodeResponse(4n, { kind: 'null' })];
  const all = Buffer.concat(frames);

  it('returns the same frames for every split point and for byte-at-a-time input', () => {
    const collect = (parts: Buffer[]) => {
      const d = new FrameDecoder();
      const out: bigint[] = [];
      for (const p of parts) {
        d.push(p);
        for (let s = d.next(); s.kind === 'frame'; s = d.next()) out.push(s.frame.requestId);
      }
      expect(d.buffered).toBe(0);
      return out;
    };
    for (let i = 0; i <= all.length; i++) expect(collect([all.subarray(0, i), all.subarray(i)])).toEqual([1n, 2n, 3n, 4n]);
    expect(collect([...all].map((b) => Buffer.from([b])))).toEqual([1n, 2n, 3n, 4n]);
    const d = new FrameDecoder();
    for (const b of frames[1]!) d.push(Buffer.from([b]));
    const s = d.next();
    expect(s.kind === 'frame' && s.frame.body).toEqual(frames[1]!.subarray(16));
  });

  it('rejects a bad magic on its first byte and an oversized body from its header alone', () => {
    const a = new FrameDecoder();
    a.push(Buffer.from('G'));
    expect(a.next()).toEqual({ kind: 'error', error: { code: 'bad_magic', message: 'bad magic byte 0x47' } });
    const b = new FrameDecoder();
    b.push(hex('da'));
    expect(b.next().kind).toBe('need');
    b.push(hex('bc'));
    expect(b.next()).toMatchObject({ kind: 'error', error: { code: 'bad_magic' } });
    const c = new FrameDecoder(1024);
    c.push(header(0xc2, 0, 1, 0x80000000));
    expect(c.next()).toMatchObject({ kind: 'error', error: { code: 'frame_too_large', message: 'frame body of 2147483648 bytes exceeds the 1024 byte limit' } });
    expect(c.buffered).toBe(0);
    c.push(hex('dabb'));
    expect(c.next().kind).toBe('error');
    expect(c.buffered).toBe(0);
  });
});
