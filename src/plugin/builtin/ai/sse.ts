// Watches a relayed server-sent-events stream for what the gateway must record (the usage chunk OpenAI sends
// last when stream_options.include_usage is set, the model, the generated text for payload logging) without
// holding bytes back: the relay forwards every chunk as it arrives and feeds a copy here. Only an incomplete
// trailing event is kept between chunks.
const DATA = 'data:';

export interface SseObserver {
  onUsage(usage: unknown): void;
  onText(text: string): void;
}

export class SseWatcher {
  #rest = '';
  /** Characters of the completion deltas seen so far (a usage estimate when the stream ends without usage). */
  deltaChars = 0;
  readonly #obs: SseObserver;
  readonly #text: boolean;

  constructor(obs: SseObserver, collectText: boolean) {
    this.#obs = obs;
    this.#text = collectText;
  }

  push(chunk: Buffer): void {
    const buf = this.#rest + chunk.toString('utf8');
    let start = 0;
    for (;;) {
      const lf = buf.indexOf('\n\n', start);
      const crlf = buf.indexOf('\r\n\r\n', start);
      let end: number;
      let sep: number;
      if (lf < 0 && crlf < 0) break;
      if (crlf >= 0 && (lf < 0 || crlf < lf)) {
        end = crlf;
        sep = 4;
      } else {
        end = lf;
        sep = 2;
      }
      this.#event(buf.slice(start, end));
      start = end + sep;
    }
    this.#rest = buf.slice(start);
    // A provider that never ends an event must not grow this without bound.
    if (this.#rest.length > 1 << 20) this.#rest = '';
  }

  end(): void {
    if (this.#rest.trim() !== '') this.#event(this.#rest);
    this.#rest = '';
  }

  #event(block: string): void {
    let data = '';
    for (const line of block.split(/\r?\n/)) {
      if (!line.startsWith(DATA)) continue;
      const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
      data = data === '' ? v : `${data}\n${v}`;
    }
    if (data === '' || data === '[DONE]') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (parsed === null || typeof parsed !== 'object') return;
    const o = parsed as { usage?: unknown; choices?: unknown };
    if (o.usage !== null && typeof o.usage === 'object') this.#obs.onUsage(o.usage);
    if (Array.isArray(o.choices)) {
      for (const c of o.choices as { delta?: { content?: unknown } }[]) {
        const t = c?.delta?.content;
        if (typeof t !== 'string') continue;
        this.deltaChars += t.length;
        if (this.#text) this.#obs.onText(t);
      }
    }
  }
}
