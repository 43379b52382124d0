// The streamed request body of the upstream HTTP/1.1 client (conn.ts): an AsyncIterable body written with
// content-length framing when the caller declared one, chunked otherwise. Buffer and string bodies are
// written by conn.ts in one go; only iterable bodies pay for this async loop.
import type { UpstreamConn } from './conn.ts';
import { expectsPayload, lengthMismatch } from './wire.ts';

/**
 * Writes `body` after `head` for request `gen` of `c`. The head goes out with the first chunk (so an empty
 * body still gets a plain head), the loop waits for 'drain' when the socket buffer is full, and it stops as
 * soon as the request is no longer the connection's. A framing error or a failing source fails the request.
 */
export async function pumpBody(c: UpstreamConn, body: AsyncIterable<Buffer | string>, head: string, method: string, declared: number, gen: number): Promise<void> {
  const it = body[Symbol.asyncIterator]();
  let written = 0;
  let headSent = false;
  let done = false;
  try {
    for (;;) {
      const r = await it.next();
      if (!c.runs(gen)) return;
      if (r.done === true) break;
      const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
      const len = chunk.length;
      if (len === 0) continue;
      if (declared >= 0 && written + len > declared) throw lengthMismatch();
      const socket = c.socket;
      socket.cork();
      if (!headSent) {
        headSent = true;
        if (!expectsPayload(method)) c.dirty = true;
        socket.write(declared >= 0 ? `${head}content-length: ${declared}\r\n\r\n` : `${head}transfer-encoding: chunked\r\n\r\n`, 'latin1');
      }
      if (declared < 0) socket.write(`${len.toString(16)}\r\n`, 'latin1');
      let more = socket.write(chunk);
      if (declared < 0) more = socket.write('\r\n', 'latin1');
      socket.uncork();
      written += len;
      if (!more) {
        await c.drain();
        if (!c.runs(gen)) return;
      }
    }
    done = true;
    const socket = c.socket;
    if (!headSent) {
      if (declared > 0) throw lengthMismatch();
      socket.write(expectsPayload(method) ? `${head}content-length: 0\r\n\r\n` : `${head}\r\n`, 'latin1');
    } else if (declared < 0) socket.write('0\r\n\r\n', 'latin1');
    else if (written !== declared) throw lengthMismatch();
    c.requestSent();
  } catch (err) {
    c.failRequest(gen, err instanceof Error ? err : new Error(String(err)));
  } finally {
    // Lets the source's generator run its cleanup (dispatch.ts's BodyPump stops its send timer there).
    if (!done) void Promise.resolve(it.return?.()).catch(ignore);
  }
}

function ignore(): void {}
