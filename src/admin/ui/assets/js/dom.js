// DOM helpers. Data only ever reaches the page as text nodes or attribute values (never as markup): every
// element is built here with createElement/textContent, so server data cannot inject HTML.

/**
 * h('button', {class: 'x', on: {click: fn}, disabled: true}, 'text', child)
 * Attributes: `class`, `on` (event listeners), booleans (set when true), anything else via setAttribute.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = Boolean(v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

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

/** A modal confirmation (native <dialog>: focus trapped, Escape cancels). Resolves true on confirm. */
export function confirmDialog(title, message, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', null, message),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'danger', on: { click: () => done(true) } }, confirmLabel),
        h('button', { type: 'button', on: { click: () => done(false) } }, 'Cancel')));
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

/** A transient status message read by screen readers (role=status region in the layout). */
export function announce(text, kind = 'info') {
  const region = document.getElementById('toast');
  if (!region) return;
  replace(region, h('div', { class: `toast ${kind}` }, text));
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => clear(region), 6000);
}
