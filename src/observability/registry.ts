// A small Prometheus registry built for the request path: a labelled series ("child") is created once per
// distinct label tuple and kept, so a caller that caches children (the prometheus plugin does, per route and
// node) records a request with plain property writes, no label hashing. Scrapes work on snapshots (plain
// JSON), which is also what cluster workers send to the primary for aggregation (see cluster-metrics.ts).
// Text exposition follows the Prometheus 0.0.4 text format as nginx-lua-prometheus writes it (APISIX): the
// histogram's `le` label comes last.

export type MetricType = 'counter' | 'gauge' | 'histogram';
/** How a cluster primary combines one series reported by several processes. */
export type Aggregation = 'sum' | 'max';

export interface SeriesSnapshot {
  readonly labels: readonly string[];
  /** Counter / gauge value, or the histogram sum. */
  readonly value: number;
  /** Histogram only: non-cumulative counts per bucket, +Inf last. */
  readonly counts?: readonly number[];
}

export interface FamilySnapshot {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  readonly aggregation: Aggregation;
  readonly buckets?: readonly number[];
  readonly series: SeriesSnapshot[];
}

const SEP = '\u0001';

export class CounterChild {
  readonly labels: readonly string[];
  value = 0;
  constructor(labels: readonly string[]) {
    this.labels = labels;
  }
  inc(n = 1): void {
    // hot path
    this.value += n;
  }
}

export class HistogramChild {
  readonly labels: readonly string[];
  readonly buckets: readonly number[];
  /** counts[i]: observations in (buckets[i-1], buckets[i]]; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  constructor(labels: readonly string[], buckets: readonly number[]) {
    this.labels = labels;
    this.buckets = buckets;
    this.counts = new Float64Array(buckets.length + 1);
  }
  observe(v: number): void {
    // hot path
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
  }
}

abstract class Family<C> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly aggregation: Aggregation;
  protected readonly series = new Map<string, C>();
  constructor(name: string, help: string, labelNames: readonly string[], aggregation: Aggregation) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.aggregation = aggregation;
  }
  protected abstract make(labels: readonly string[]): C;
  /** The series of one label tuple (values in labelNames order), created on first use. */
  child(values: readonly string[]): C {
    const key = values.length === 1 ? values[0]! : values.join(SEP);
    let c = this.series.get(key);
    if (c === undefined) {
      if (values.length !== this.labelNames.length) throw new Error(`${this.name}: ${values.length} label values for ${this.labelNames.length} labels`);
      c = this.make(values.slice());
      this.series.set(key, c);
    }
    return c;
  }
  clear(): void {
    this.series.clear();
  }
  get size(): number {
    return this.series.size;
  }
}

export class Counter extends Family<CounterChild> {
  readonly type = 'counter' as const;
  protected make(labels: readonly string[]): CounterChild {
    return new CounterChild(labels);
  }
  snapshot(): FamilySnapshot {
    const series: SeriesSnapshot[] = [];
    for (const c of this.series.values()) series.push({ labels: c.labels, value: c.value });
    return { name: this.name, help: this.help, type: 'counter', labelNames: this.labelNames, aggregation: 'sum', series };
  }
}

export class Gauge extends Family<CounterChild> {
  readonly type = 'gauge' as const;
  protected make(labels: readonly string[]): CounterChild {
    return new CounterChild(labels);
  }
  set(values: readonly string[], v: number): void {
    this.child(values).value = v;
  }
  snapshot(): FamilySnapshot {
    const series: SeriesSnapshot[] = [];
    for (const c of this.series.values()) series.push({ labels: c.labels, value: c.value });
    return { name: this.name, help: this.help, type: 'gauge', labelNames: this.labelNames, aggregation: this.aggregation, series };
  }
}

export class Histogram extends Family<HistogramChild> {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames, 'sum');
    this.buckets = [...buckets].sort((a, b) => a - b);
  }
  protected make(labels: readonly string[]): HistogramChild {
    return new HistogramChild(labels, this.buckets);
  }
  snapshot(): FamilySnapshot {
    const series: SeriesSnapshot[] = [];
    for (const c of this.series.values()) series.push({ labels: c.labels, value: c.sum, counts: Array.from(c.counts) });
    return { name: this.name, help: this.help, type: 'histogram', labelNames: this.labelNames, aggregation: 'sum', buckets: this.buckets, series };
  }
}

type AnyFamily = Counter | Gauge | Histogram;

/** Refreshes scrape-time gauges; may be async (etcd reachability). Errors are counted, not thrown. */
export type Collector = () => void | Promise<void>;

export class Registry {
  private readonly families: AnyFamily[] = [];
  private readonly collectors: Collector[] = [];
  /** Failed collectors and registry errors (APISIX: nginx_metric_errors_total). */
  errors = 0;

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames, 'sum'));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = [], aggregation: Aggregation = 'sum'): Gauge {
    return this.add(new Gauge(name, help, labelNames, aggregation));
  }
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }
  onCollect(c: Collector): void {
    this.collectors.push(c);
  }

  private add<F extends AnyFamily>(f: F): F {
    if (this.families.some((x) => x.name === f.name)) throw new Error(`metric ${f.name} registered twice`);
    this.families.push(f);
    return f;
  }

  /** Runs the collectors, then copies every family. */
  async snapshot(): Promise<FamilySnapshot[]> {
    for (const c of this.collectors) {
      try {
        await c();
      } catch {
        this.errors++;
      }
    }
    return this.families.map((f) => f.snapshot());
  }
}

/** Combines the snapshots of several processes: series with the same labels are summed (or max'ed). */
export function mergeSnapshots(parts: readonly (readonly FamilySnapshot[])[]): FamilySnapshot[] {
  const out = new Map<string, { fam: FamilySnapshot; series: Map<string, { labels: readonly string[]; value: number; counts?: number[] }> }>();
  for (const part of parts) {
    for (const fam of part) {
      let slot = out.get(fam.name);
      if (slot === undefined) {
        slot = { fam, series: new Map() };
        out.set(fam.name, slot);
      }
      const max = slot.fam.aggregation === 'max';
      for (const s of fam.series) {
        const key = s.labels.join(SEP);
        const prev = slot.series.get(key);
        if (prev === undefined) {
          slot.series.set(key, { labels: s.labels, value: s.value, counts: s.counts === undefined ? undefined : [...s.counts] });
          continue;
        }
        prev.value = max ? Math.max(prev.value, s.value) : prev.value + s.value;
        if (prev.counts !== undefined && s.counts !== undefined) for (let i = 0; i < prev.counts.length; i++) prev.counts[i]! += s.counts[i] ?? 0;
      }
    }
  }
  return [...out.values()].map(({ fam, series }) => ({ ...fam, series: [...series.values()] }));
}

function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isNaN(v) ? 'NaN' : String(v);
}

function labelText(names: readonly string[], values: readonly string[], le?: string): string {
  let s = '';
  for (let i = 0; i < names.length; i++) s += `${s === '' ? '' : ','}${names[i]}="${escapeLabel(values[i] ?? '')}"`;
  if (le !== undefined) s += `${s === '' ? '' : ','}le="${le}"`;
  return s === '' ? '' : `{${s}}`;
}

/** Prometheus text format (version 0.0.4). */
export function renderText(families: readonly FamilySnapshot[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.series) {
      if (f.type !== 'histogram') {
        lines.push(`${f.name}${labelText(f.labelNames, s.labels)} ${num(s.value)}`);
        continue;
      }
      const buckets = f.buckets ?? [];
      const counts = s.counts ?? [];
      let cum = 0;
      for (let i = 0; i <= buckets.length; i++) {
        cum += counts[i] ?? 0;
        const le = i < buckets.length ? num(buckets[i]!) : '+Inf';
        lines.push(`${f.name}_bucket${labelText(f.labelNames, s.labels, le)} ${cum}`);
      }
      lines.push(`${f.name}_sum${labelText(f.labelNames, s.labels)} ${num(s.value)}`, `${f.name}_count${labelText(f.labelNames, s.labels)} ${cum}`);
    }
  }
  return lines.join('\n') + '\n';
}

export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
