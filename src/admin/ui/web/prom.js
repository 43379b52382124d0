// A small, tolerant reader of the Prometheus text format (enough for the traffic view): unknown lines are
// skipped, so a changed exporter degrades the view instead of breaking it.

function parseLabels(s) {
  const out = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;
  let m;
  while ((m = re.exec(s)) !== null) out[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return out;
}

/** [{name, labels, value}] */
export function parseProm(text) {
  const out = [];
  for (const line of String(text).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') continue;
    out.push({ name: m[1], labels: m[3] ? parseLabels(m[3]) : {}, value });
  }
  return out;
}

/** The q-quantile of cumulative histogram buckets [{le, count}] (linear within the bucket, like histogram_quantile). */
export function quantile(q, buckets) {
  const bs = buckets.filter((b) => Number.isFinite(b.le) || b.le === Infinity).sort((a, b) => a.le - b.le);
  if (bs.length === 0) return null;
  const total = bs[bs.length - 1].count;
  if (total === 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of bs) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket === 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/**
 * The traffic summary: total requests, per status class, p50/p99 request latency per route.
 * Metric names are found by suffix so a configured metric_prefix still works.
 */
export function summarize(samples) {
  const by = (suffix) => samples.filter((s) => s.name.endsWith(suffix));
  const status = by('_http_status');
  const classes = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  let statusTotal = 0;
  for (const s of status) {
    const c = `${String(s.labels.code ?? '')[0] ?? '?'}xx`;
    if (c in classes) classes[c] += s.value;
    statusTotal += s.value;
  }
  const gauge = by('_http_requests_total').find((s) => Object.keys(s.labels).length === 0);
  const routes = new Map();
  for (const s of by('_http_latency_bucket')) {
    if (s.labels.type !== undefined && s.labels.type !== 'request') continue;
    const route = s.labels.route ?? '';
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (!routes.has(route)) routes.set(route, new Map());
    const m = routes.get(route);
    m.set(le, (m.get(le) ?? 0) + s.value);
  }
  const latency = [...routes].map(([route, m]) => {
    const buckets = [...m].map(([le, count]) => ({ le, count }));
    const count = Math.max(0, ...buckets.map((b) => b.count));
    return { route, count, p50: quantile(0.5, buckets), p99: quantile(0.99, buckets) };
  });
  latency.sort((a, b) => b.count - a.count);
  return {
    known: status.length > 0 || gauge !== undefined || latency.length > 0,
    requests: gauge?.value ?? statusTotal,
    classes,
    latency,
    families: new Set(samples.map((s) => s.name)).size,
  };
}
