// Forms generated from the JSON Schemas the Admin API serves (/apisix/admin/schema/<kind>,
// /apisix/admin/plugins/<name>). Scalars, enums, booleans, lists of scalars and nested objects get real inputs;
// anything a form cannot express well (anyOf of objects, maps, arrays of objects) gets a JSON text box for
// that one field. Keys the form does not show are kept from the edited value, so saving never drops them.
import { brief, h, nextId } from './dom.js';

const SCALARS = new Set(['string', 'integer', 'number']);
/** String fields that hold proto source or code: edited in a text area (so are PEM-sized strings, see field()). */
const MULTILINE = new Set(['content', 'script', 'filter_func', 'body', 'template']);

/** Thrown by get() when a field's text cannot be turned into a value (shown next to that field). */
export class FieldError extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

function branches(s) {
  return s.oneOf ?? s.anyOf ?? null;
}

function scalarTypes(s) {
  if (s.enum) return null;
  if (typeof s.type === 'string' && SCALARS.has(s.type)) return [s.type];
  if (Array.isArray(s.type) && s.type.every((t) => SCALARS.has(t))) return s.type;
  return null;
}

function classify(s) {
  if (!s || typeof s !== 'object') return 'json';
  if (Array.isArray(s.enum) && s.enum.every((v) => v === null || typeof v !== 'object')) return 'enum';
  const alt = branches(s);
  if (alt && !s.properties) {
    const types = alt.map(scalarTypes);
    if (types.every((t) => t !== null)) return types.flat().every((t) => t === 'string') ? 'string' : 'scalar';
    return 'json';
  }
  if (s.type === 'boolean') return 'boolean';
  if (s.type === 'string') return 'string';
  if (s.type === 'integer' || s.type === 'number') return 'number';
  if (s.type === 'array') {
    const it = s.items;
    if (it && Array.isArray(it.enum)) return 'multi';
    if (it && scalarTypes(it)) return 'list';
    return 'json';
  }
  // oneOf/anyOf beside `properties` only adds constraints (e.g. "nodes or service_name"); the server checks them.
  if ((s.type === 'object' || s.type === undefined) && s.properties) return 'object';
  return 'json';
}

function numberish(text) {
  return /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text);
}

/**
 * buildForm(schema, value, {basePath, readOnly, skip, legend}) ->
 *   { el, get(), showError(path, message) -> boolean, clearErrors() }
 */
export function buildForm(schema, value, opts = {}) {
  const fields = new Map();
  const ctx = { fields, readOnly: Boolean(opts.readOnly) };
  const root = objectField(ctx, schema, value ?? {}, opts.basePath ?? [], { root: true, skip: new Set(opts.skip ?? []), legend: opts.legend });
  return {
    el: root.el,
    get: () => root.get() ?? {},
    showError(path, message) {
      for (let i = path.length; i >= 0; i--) {
        const f = fields.get(path.slice(0, i).join('\u0000'));
        if (f) {
          f.setError(message);
          return true;
        }
      }
      return false;
    },
    clearErrors() {
      for (const f of fields.values()) f.setError(null);
    },
  };
}

/** Label, help, input and error slot of one field; registers it for error display. */
function wrap(ctx, path, name, s, required, control, { group = false } = {}) {
  const id = control.id || nextId('fld');
  control.id = id;
  const errId = `${id}-err`;
  const helpId = `${id}-help`;
  const help = [];
  if (s.description) help.push(s.description);
  if (s.default !== undefined) help.push(`default: ${brief(s.default, 60)}`);
  const labelText = [name, required ? ' *' : ''];
  const label = group
    ? h('span', { class: 'label', id: `${id}-label` }, ...labelText)
    : h('label', { for: id }, ...labelText);
  const err = h('div', { class: 'field-error', id: errId, role: 'alert', hidden: true });
  control.setAttribute('aria-describedby', `${helpId} ${errId}`);
  if (required) control.setAttribute('aria-required', 'true');
  const el = h('div', { class: 'field', 'data-field': path.join('.') }, label, control,
    help.length ? h('div', { class: 'help', id: helpId }, help.join(' — ')) : h('span', { id: helpId, hidden: true }), err);
  const setError = (msg) => {
    if (msg === null) {
      err.hidden = true;
      err.textContent = '';
      control.removeAttribute('aria-invalid');
      el.classList.remove('invalid');
      return;
    }
    err.textContent = msg;
    err.hidden = false;
    control.setAttribute('aria-invalid', 'true');
    el.classList.add('invalid');
    for (let p = el.parentElement; p; p = p.parentElement) if (p.tagName === 'DETAILS') p.open = true;
  };
  ctx.fields.set(path.join('\u0000'), { setError });
  return { el, setError };
}

function field(ctx, s, value, path, name, required) {
  const kind = classify(s);
  if (kind === 'object') return objectField(ctx, s, value, path, { name, required });
  const dp = path.join('.');
  const ro = ctx.readOnly;
  switch (kind) {
    case 'enum': {
      const sel = h('select', { 'data-path': dp, disabled: ro },
        h('option', { value: '' }, s.default !== undefined ? `(default: ${brief(s.default)})` : '(unset)'),
        s.enum.map((v, i) => h('option', { value: String(i) }, String(v))));
      const at = s.enum.findIndex((v) => v === value);
      sel.value = at >= 0 ? String(at) : '';
      const w = wrap(ctx, path, name, s, required, sel);
      return { el: w.el, get: () => (sel.value === '' ? undefined : s.enum[Number(sel.value)]) };
    }
    case 'boolean': {
      const sel = h('select', { 'data-path': dp, disabled: ro },
        h('option', { value: '' }, s.default !== undefined ? `(default: ${s.default})` : '(unset)'),
        h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
      sel.value = value === true ? 'true' : value === false ? 'false' : '';
      const w = wrap(ctx, path, name, s, required, sel);
      return { el: w.el, get: () => (sel.value === '' ? undefined : sel.value === 'true') };
    }
    case 'string':
    case 'number':
    case 'scalar': {
      const long = kind === 'string' &&
        (MULTILINE.has(name) || Math.max(...[s, ...(branches(s) ?? [])].map((b) => b.maxLength ?? 0)) > 8192 ||
          (typeof value === 'string' && value.includes('\n')));
      const input = long
        ? h('textarea', { 'data-path': dp, rows: 4, readonly: ro, spellcheck: 'false' })
        : h('input', { type: 'text', 'data-path': dp, readonly: ro, inputmode: kind === 'number' ? 'decimal' : undefined, autocomplete: 'off', spellcheck: 'false' });
      input.value = value === undefined || value === null ? '' : String(value);
      if (s.pattern && !long) input.setAttribute('placeholder', `pattern ${brief(s.pattern, 40)}`);
      const w = wrap(ctx, path, name, s, required, input);
      const allowsNumber = kind === 'number' || (kind === 'scalar' && (branches(s) ?? []).some((b) => b.type === 'integer' || b.type === 'number'));
      return {
        el: w.el,
        get: () => {
          const t = input.value;
          if (t === '') return undefined;
          // A number field keeps unparsable text as a string, so the server's type error lands here.
          if (allowsNumber && numberish(t.trim())) return Number(t.trim());
          return t;
        },
      };
    }
    case 'list': {
      const area = h('textarea', { 'data-path': dp, rows: 3, readonly: ro, spellcheck: 'false', placeholder: 'one value per line' });
      area.value = Array.isArray(value) ? value.join('\n') : '';
      const numeric = s.items.type === 'integer' || s.items.type === 'number';
      const w = wrap(ctx, path, name, s, required, area);
      return {
        el: w.el,
        get: () => {
          const items = area.value.split('\n').map((x) => x.trim()).filter((x) => x !== '');
          if (items.length === 0) return undefined;
          return numeric ? items.map((x) => (numberish(x) ? Number(x) : x)) : items;
        },
      };
    }
    case 'multi': {
      const chosen = new Set(Array.isArray(value) ? value : []);
      const boxes = s.items.enum.map((v) => {
        const id = nextId('opt');
        const box = h('input', { type: 'checkbox', id, checked: chosen.has(v), disabled: ro, 'data-path': `${dp}.${v}` });
        return { v, box, el: h('label', { class: 'check', for: id }, box, String(v)) };
      });
      const group = h('div', { class: 'checks', role: 'group' }, boxes.map((b) => b.el));
      const w = wrap(ctx, path, name, s, required, group, { group: true });
      group.setAttribute('aria-labelledby', `${group.id}-label`);
      return {
        el: w.el,
        get: () => {
          const out = boxes.filter((b) => b.box.checked).map((b) => b.v);
          return out.length === 0 ? undefined : out;
        },
      };
    }
    default: {
      const area = h('textarea', { class: 'json', 'data-path': dp, rows: 3, readonly: ro, spellcheck: 'false', placeholder: 'JSON value' });
      area.value = value === undefined ? '' : JSON.stringify(value, null, 2);
      const w = wrap(ctx, path, `${name} (JSON)`, s, required, area);
      const f = {
        el: w.el,
        get: () => {
          if (area.value.trim() === '') return undefined;
          try {
            return JSON.parse(area.value);
          } catch (e) {
            w.setError(`not valid JSON: ${e.message}`);
            throw new FieldError(f, `${path.join('.')}: not valid JSON`);
          }
        },
      };
      return f;
    }
  }
}

function objectField(ctx, s, value, path, o) {
  const props = s.properties ?? {};
  const required = new Set(Array.isArray(s.required) ? s.required : []);
  const names = Object.keys(props).filter((k) => !(o.skip?.has(k)) && k !== '_meta');
  names.sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
  const current = value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
  const children = names.map((k) => [k, field(ctx, props[k], current[k], [...path, k], k, required.has(k))]);
  const body = children.map(([, c]) => c.el);
  let el;
  if (o.root) {
    el = h('div', { class: 'schema-form' }, o.legend ? h('p', { class: 'legend' }, o.legend) : null, body);
  } else {
    const err = wrap(ctx, path, o.name, s, o.required, h('span', { class: 'obj-anchor', tabindex: '-1' }), { group: true });
    el = h('details', { class: 'obj', open: o.required || Object.keys(current).length > 0, 'data-field': path.join('.') },
      h('summary', null, o.name, o.required ? ' *' : '', s.description ? h('span', { class: 'muted' }, ` — ${brief(s.description, 80)}`) : null),
      err.el, body);
  }
  return {
    el,
    get: () => {
      const out = {};
      // Keys without a form field (unknown to the schema, _meta, skipped ones) are kept as they were.
      for (const [k, v] of Object.entries(current)) if (!names.includes(k)) out[k] = v;
      for (const [k, c] of children) {
        const v = c.get();
        if (v !== undefined) out[k] = v;
      }
      if (!o.root && Object.keys(out).length === 0) return undefined;
      return out;
    },
  };
}
