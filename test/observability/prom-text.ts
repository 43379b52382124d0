// Parses Prometheus text exposition for assertions: samples with their labels, looked up by name + labels.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseProm(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`bad exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** Samples of `name` whose labels include `want`. */
export function find(samples: Sample[], name: string, want: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}

/** The one value of `name` with `want` labels (0 when absent), summed when several match. */
export function value(samples: Sample[], name: string, want: Record<string, string> = {}): number {
  return find(samples, name, want).reduce((a, s) => a + s.value, 0);
}

export async function scrape(url: string): Promise<Sample[]> {
  const r = await fetch(url);
  if (r.status !== 200) throw new Error(`scrape ${url}: ${r.status}`);
  return parseProm(await r.text());
}
