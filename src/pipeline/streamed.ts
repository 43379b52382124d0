// A plugin's streamed local answer (PluginResponse.stream) dressed as a ProxiedResponse, so it goes out through
// the same path as a proxied body (Transaction.respond: header_filter, body_filter per chunk, drain-driven
// backpressure, close cancels). The pump asks the iterator for the next chunk only while the client keeps up.
import { Readable } from 'node:stream';
import type { PluginResponse } from '../plugin/plugin.ts';
import type { BodySink, ProxiedResponse } from '../upstream/dispatch.ts';

const NO_TRAILERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export class StreamedAnswer implements ProxiedResponse {
  readonly ok = true;
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly #source: AsyncIterable<Buffer>;
  readonly #cancel: ((reason: Error) => void) | undefined;
  #it: AsyncIterator<Buffer> | null = null;
  #sink: BodySink | null = null;
  #paused = false;
  #wake: (() => void) | null = null;
  #done = false;

  constructor(r: PluginResponse, headers: Record<string, string | string[]>) {
    this.status = r.status;
    this.headers = headers;
    this.#source = r.stream!;
    this.#cancel = r.cancel;
  }

  get body(): Readable {
    return Readable.from(this.#source);
  }

  trailers(): Record<string, string> {
    return NO_TRAILERS;
  }

  pipeTo(sink: BodySink): void {
    this.#sink = sink;
    this.#it = this.#source[Symbol.asyncIterator]();
    void this.#pump();
  }

  resume(): void {
    this.#paused = false;
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  discard(): void {
    this.abort(new Error('streamed answer discarded'));
  }

  abort(reason?: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#cancel?.(reason ?? new Error('client closed the connection'));
    this.resume();
  }

  async #pump(): Promise<void> {
    const it = this.#it!;
    const sink = this.#sink!;
    try {
      for (;;) {
        if (this.#paused) await new Promise<void>((resolve) => (this.#wake = resolve));
        if (this.#done) break;
        const next = await it.next();
        if (this.#done) break;
        if (next.done === true) {
          this.#done = true;
          sink.end(NO_TRAILERS);
          return;
        }
        if (!sink.write(next.value)) this.#paused = true;
      }
      // Aborted: let the producer run its cleanup (its pending read already failed through cancel()).
      void it.return?.().catch(() => undefined);
    } catch (err) {
      if (this.#done) return;
      this.#done = true;
      sink.error(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
