// Small helpers shared by the pages.

let uid = 0;
/** A fresh element id (labels and aria-describedby need ids). */
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** Short single-line text of any JSON value for table cells. */
export function brief(v, max = 80) {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
