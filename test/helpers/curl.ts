// curl as an independent HTTP client for end-to-end checks (status, headers, body exactly as sent on the wire).
import { execFile } from 'node:child_process';

export interface CurlResult {
  status: number;
  /** Lower-cased names; repeated headers keep every value. */
  headers: Record<string, string[]>;
  body: string;
}

/** Runs `curl -sS -i <args> <url>` (bounded by a 10 s timeout) and splits the answer. */
export async function curl(url: string, args: readonly string[] = []): Promise<CurlResult> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile('curl', ['-sS', '-i', '--max-time', '10', ...args, url], { encoding: 'utf8', maxBuffer: 8 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
  });
  const split = out.indexOf('\r\n\r\n');
  const head = split < 0 ? out : out.slice(0, split);
  const body = split < 0 ? '' : out.slice(split + 4);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string[]> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    (headers[name] ??= []).push(line.slice(colon + 1).trim());
  }
  return { status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body };
}
