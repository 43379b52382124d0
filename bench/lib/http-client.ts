// A small keep-alive HTTP client for the config scenarios (polling the data plane, the client loop that must
// see no errors while routes change). undici Pool: one per target, bounded connections and timeouts.
import { Pool } from 'undici';

export class Client {
  readonly #pool: Pool;

  constructor(port: number, connections = 8) {
    this.#pool = new Pool(`http://127.0.0.1:${port}`, { connections, headersTimeout: 5000, bodyTimeout: 5000, connectTimeout: 5000 });
  }

  /** Status of GET `path` (body drained), or -1 on a network error. */
  async status(path: string): Promise<number> {
    try {
      const res = await this.#pool.request({ path, method: 'GET' });
      await res.body.dump();
      return res.statusCode;
    } catch {
      return -1;
    }
  }

  /** Polls GET `path` until it answers `want`; resolves to the milliseconds waited. Throws after timeoutMs. */
  async waitStatus(path: string, want: number, timeoutMs: number): Promise<number> {
    const start = performance.now();
    for (let i = 0; ; i++) {
      if ((await this.status(path)) === want) return performance.now() - start;
      if (performance.now() - start > timeoutMs) throw new Error(`GET ${path} did not answer ${want} within ${timeoutMs} ms`);
      // Spin tightly at first (propagation is usually a few ms), then back off to spare the CPU.
      if (i > 50) await new Promise((r) => setTimeout(r, 2));
    }
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
