// The access log's LineWriter (nginx `buffer= flush=`): a quiet gateway's lines reach the file once the flush
// interval of the oldest is over, a full buffer is written at once, shutdown writes what is queued (in order),
// and a stalled destination drops and counts lines beyond the bound. The flush clock is vitest's fake
// setTimeout (the writer's one timer), so the test steps through the interval instead of sleeping; the writes
// and the reads of the file are real.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { FLUSH_MS, LineWriter } from '../../src/observability/line-writer.ts';
import { tempDir } from '../helpers/proc.ts';

let dir: string;
let cleanup: () => Promise<void>;
let n = 0;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-linewriter-'));
});

afterAll(async () => {
  await cleanup?.();
});

afterEach(() => {
  vi.useRealTimers();
});

function file(): string {
  return path.join(dir, `log-${++n}`, 'access.log');
}

const text = (f: string): Promise<string> => readFile(f, 'utf8');

/**
 * A FIFO held open by a reader that never reads (so writers can open it and block on it once it is full); read()
 * starts another process (cat) that reads everything until the last writer closes. The reader being another
 * process matters: a write that blocks the event loop cannot then stop the pipe from draining.
 */
function slowPipe(name: string): { path: string; read(): Promise<string>; close(): void } {
  const fifo = path.join(dir, name);
  execFileSync('mkfifo', [fifo]);
  const hold = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  return {
    path: fifo,
    read: () =>
      new Promise((resolve, reject) => {
        const cat = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
        const chunks: Buffer[] = [];
        cat.stdout.on('data', (d: Buffer) => chunks.push(d));
        cat.on('error', reject);
        cat.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      }),
    close: () => closeSync(hold),
  };
}

/** Gives a write that has started (libuv threadpool) time to land: a few real round trips through the pool. */
async function settle(f: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await text(f);
    await new Promise((r) => setImmediate(r));
  }
}

describe('LineWriter', () => {
  test('under low traffic a line stays buffered until the flush interval of the first queued line is over', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const f = file();
    const w = new LineWriter(f);
    w.write('{"a":1}\n');
    vi.advanceTimersByTime(FLUSH_MS / 2);
    w.write('{"a":2}\n');
    vi.advanceTimersByTime(FLUSH_MS / 2 - 1);
    await settle(f);
    expect(await text(f)).toBe('');
    vi.advanceTimersByTime(1);
    await vi.waitFor(async () => expect(await text(f)).toBe('{"a":1}\n{"a":2}\n'), { timeout: 5000 });

    // The timer has fired; the next line re-arms it for a full interval of its own.
    w.write('{"a":3}\n');
    vi.advanceTimersByTime(FLUSH_MS - 1);
    await settle(f);
    expect(await text(f)).toBe('{"a":1}\n{"a":2}\n');
    vi.advanceTimersByTime(1);
    await vi.waitFor(async () => expect(await text(f)).toBe('{"a":1}\n{"a":2}\n{"a":3}\n'), { timeout: 5000 });
    expect(w.dropped).toBe(0);
  });

  test('a full buffer is written without waiting for the interval; the rest waits for the next', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const f = file();
    const w = new LineWriter(f, 64);
    const lines = Array.from({ length: 8 }, (_, i) => `{"line":${i},"pad":"xxxxxxxx"}\n`); // 28 characters each
    for (const l of lines.slice(0, 3)) w.write(l);
    await vi.waitFor(async () => expect(await text(f)).toBe(lines.slice(0, 3).join('')), { timeout: 5000 });
    w.write(lines[3]!);
    await settle(f);
    expect(await text(f)).toBe(lines.slice(0, 3).join(''));
    vi.advanceTimersByTime(FLUSH_MS);
    await vi.waitFor(async () => expect(await text(f)).toBe(lines.slice(0, 4).join('')), { timeout: 5000 });
  });

  test('buffer 0 starts a write for a line at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const f = file();
    const w = new LineWriter(f, 0);
    w.write('{"now":1}\n');
    await vi.waitFor(async () => expect(await text(f)).toBe('{"now":1}\n'), { timeout: 5000 });
  });

  test('shutdown (flush) writes the queued lines before it resolves', async () => {
    const f = file();
    const w = new LineWriter(f);
    w.write('{"bye":1}\n');
    w.write('{"bye":2}\n');
    await w.flush();
    expect(readFileSync(f, 'utf8')).toBe('{"bye":1}\n{"bye":2}\n');
  });

  test('shutdown while a write to a slow pipe is in flight waits for it, then writes the queue after it', async () => {
    // stdout to a pipe (a container's log collector) that is not reading: the write in flight blocks on the
    // threadpool; writing the queue beside it would interleave the two (or block the event loop).
    const pipe = slowPipe('slow.fifo');
    const w = new LineWriter(pipe.path, 0);
    try {
      const first = `{"first":"${'x'.repeat(256 * 1024)}"}\n`; // several times the pipe's capacity
      w.write(first); // buffer 0: its write starts now
      w.write('{"second":1}\n'); // queued behind it
      let flushed = false;
      const done = w.flush().then(() => {
        flushed = true;
      });
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      expect(flushed).toBe(false);
      const read = pipe.read();
      await done;
      closeSync(w.fd);
      expect(await read).toBe(`${first}{"second":1}\n`);
    } finally {
      pipe.close();
    }
  });

  test("two processes' writers on one pipe never tear each other's lines (writes of at most PIPE_BUF)", async () => {
    // Worker processes share stdout; two writers (two fds on one FIFO) stand for them. Nothing reads until both
    // have queued their lines, so their writes block on a full pipe at once, where writes above PIPE_BUF
    // interleave.
    const pipe = slowPipe('shared.fifo');
    const writers = [new LineWriter(pipe.path), new LineWriter(pipe.path)];
    try {
      const expected: string[] = [];
      for (const [k, w] of writers.entries()) {
        for (let i = 0; i < 400; i++) {
          const line = JSON.stringify({ writer: k, i, pad: 'p'.repeat(200 + ((i * 37) % 300)) });
          expected.push(line);
          w.write(`${line}\n`);
        }
      }
      const done = Promise.all(writers.map((w) => w.flush()));
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      const read = pipe.read();
      await done;
      for (const w of writers) closeSync(w.fd);
      const got = (await read).split('\n');
      expect(got.pop()).toBe('');
      expect(got.filter((l) => !expected.includes(l))).toEqual([]);
      expect(got.sort()).toEqual(expected.sort());
    } finally {
      pipe.close();
    }
  });

  test('multi-byte lines across many chunks arrive whole and in order (file and pipe)', async () => {
    // Lines are encoded into fixed chunks: lines of 1-, 2-, 3- and 4-byte characters, some longer than a pipe's
    // chunk, must cross chunk boundaries without a byte lost, split or reordered.
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) lines.push(`${i} ${'aé€😀'.repeat(1 + (i % 40))}${i % 500 === 0 ? 'ü'.repeat(3000) : ''}\n`);
    const want = lines.join('');
    const f = file();
    const w = new LineWriter(f);
    for (const l of lines) w.write(l);
    await w.flush();
    expect(await text(f)).toBe(want);
    const pipe = slowPipe('utf8-pipe');
    const read = pipe.read();
    const p = new LineWriter(pipe.path);
    for (const l of lines) p.write(l);
    await p.flush();
    closeSync(p.fd);
    pipe.close();
    expect(await read).toBe(want);
  });

  test('beyond 16 MiB queued, lines are dropped and counted', async () => {
    const f = file();
    // A buffer larger than the bound: nothing is written until flush, as with a stalled destination.
    const w = new LineWriter(f, Number.POSITIVE_INFINITY);
    const mib = `${'x'.repeat(1024 * 1024 - 1)}\n`;
    for (let i = 0; i < 20; i++) w.write(mib);
    expect(w.dropped).toBe(3);
    await w.flush();
    expect(readFileSync(f).length).toBe(17 * 1024 * 1024);
  });
});
