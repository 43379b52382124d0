// Real clients for data-plane tests: undici (keep-alive agent) and curl.
import { execFile } from 'node:child_process';
import { Agent, request } from 'undici';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): any;
  trailers: Record<string, string>;
}

export interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** One keep-alive agent per test file; close it in afterAll. */
export function client(): { call(url: string, opts?: CallOptions): Promise<Reply>; close(): Promise<void> } {
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: 16 });
  return {
    async call(url, opts = {}) {
      const res = await request(url, {
        method: (opts.method ?? 'GET') as 'GET',
        headers: opts.headers,
        body: opts.body,
        dispatcher: agent,
        headersTimeout: 15_000,
        bodyTimeout: 15_000,
      });
      const text = await res.body.text();
      return {
        status: res.statusCode,
        headers: res.headers,
        text,
        json: () => JSON.parse(text),
        trailers: res.trailers,
      };
    },
    close: () => agent.close(),
  };
}

export interface CurlReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Runs /usr/bin/curl; `-i` output parsed into the final response's status, headers and body. */
export function curl(args: string[], timeoutMs = 15_000): Promise<CurlReply> {
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/curl', ['-s', '-i', '--max-time', String(timeoutMs / 1000), ...args], { timeout: timeoutMs + 2000, maxBuffer: 8 * 1024 * 1024 }, (err, stdout) => {
      if (err && stdout === '') return reject(err);
      let rest = stdout;
      // Skip interim (1xx) heads.
      for (;;) {
        const end = rest.indexOf('\r\n\r\n');
        if (end < 0) return reject(new Error(`curl: no response head in ${JSON.stringify(stdout.slice(0, 200))}`));
        const head = rest.slice(0, end);
        rest = rest.slice(end + 4);
        const lines = head.split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        if (status >= 100 && status < 200) continue;
        const headers: Record<string, string> = {};
        for (const l of lines.slice(1)) {
          const i = l.indexOf(':');
          if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        return resolve({ status, headers, body: rest });
      }
    });
  });
}

