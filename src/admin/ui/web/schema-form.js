// Forms generated from the JSON Schemas the Admin API serves (/apisix/admin/schema/<kind>,
// /apisix/admin/plugins/<name>). Scalars, enums, booleans, lists of scalars and nested objects get real inputs;
// anything a form cannot express well (anyOf of objects, maps, arrays of objects) gets a JSON text box for
// that one field. Keys the form does not show are kept from the edited value, so saving never drops them.
//
// Each field keeps its own text in component state and registers {get, setError} under its key path in the
// form's registry: the editor reads the value on save and places an Admin API error on the field its path names.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { brief, nextId } from './util.js';

const SCALARS = new Set(['string', 'integer', 'number']);
/** String fields that hold proto source or code: edited in a text area (so are PEM-sized strings, see ScalarField). */
const MULTILINE = new Set(['content', 'script', 'filter_func', 'body', 'template']);
const NUMBERISH = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

/** Thrown by get() when a field's text cannot be turned into a value (shown next to that field). */
export class FieldError extends Error {}

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

const keyOf = (path) => path.join('\u0000');

/**
 * <SchemaForm schema value basePath readOnly skip formRef/>: formRef.current becomes
 * { get(), showError(path, message) -> boolean, clearErrors() }.
 */
export function SchemaForm({ schema, value, basePath = [], readOnly = false, skip = [], formRef }) {
  const ctx = useMemo(() => ({ fields: new Map(), readOnly }), []);
  const skipSet = useMemo(() => new Set(skip), []);
  formRef.current = {
    get: () => ctx.fields.get(keyOf(basePath)).get() ?? {},
    showError(path, message) {
      for (let i = path.length; i >= 0; i--) {
        const f = ctx.fields.get(keyOf(path.slice(0, i)));
        if (f?.setError) {
          f.setError(message);
          return true;
        }
      }
      return false;
    },
    clearErrors() {
      for (const f of ctx.fields.values()) f.setError?.(null);
    },
  };
  return html`<div class="schema-form"><${ObjectField} ctx=${ctx} s=${schema} value=${value ?? {}} path=${basePath} root skip=${skipSet} /></div>`;
}

/** The field's error state, registered with its getter under its path. */
function useField(ctx, path, get, withError = true) {
  const [error, setError] = useState(null);
  ctx.fields.set(keyOf(path), { get, setError: withError ? setError : null });
  return error;
}

function controlProps(id, required, error) {
  return {
    id,
    'aria-describedby': `${id}-help ${id}-err`,
    'aria-required': required ? 'true' : undefined,
    'aria-invalid': error ? 'true' : undefined,
  };
}

/** Label, control, help and error slot of one field. An error opens the <details> it sits in. */
function Shell({ id, path, name, s, required, error, group, children }) {
  const ref = useRef(null);
  useEffect(() => {
    if (error === null) return;
    for (let p = ref.current?.parentElement; p; p = p.parentElement) if (p.tagName === 'DETAILS') p.open = true;
  }, [error]);
  const help = [];
  if (s.description) help.push(s.description);
  if (s.default !== undefined) help.push(`default: ${brief(s.default, 60)}`);
  const label = `${name}${required ? ' *' : ''}`;
  return html`<div class=${error === null ? 'field' : 'field invalid'} data-field=${path.join('.')} ref=${ref}>
    ${group ? html`<span class="label" id=${`${id}-label`}>${label}</span>` : html`<label for=${id}>${label}</label>`}
    ${children}
    ${help.length > 0 ? html`<div class="help" id=${`${id}-help`}>${help.join(' — ')}</div>` : html`<span id=${`${id}-help`} hidden />`}
    <div class="field-error" id=${`${id}-err`} role="alert" hidden=${error === null}>${error ?? ''}</div>
  </div>`;
}

function useId() {
  return useState(() => nextId('fld'))[0];
}

function Field(props) {
  switch (classify(props.s)) {
    case 'object':
      return html`<${ObjectField} ...${props} />`;
    case 'enum':
      return html`<${EnumField} ...${props} />`;
    case 'boolean':
      return html`<${BooleanField} ...${props} />`;
    case 'string':
      return html`<${ScalarField} ...${props} kind="string" />`;
    case 'number':
      return html`<${ScalarField} ...${props} kind="number" />`;
    case 'scalar':
      return html`<${ScalarField} ...${props} kind="scalar" />`;
    case 'list':
      return html`<${ListField} ...${props} />`;
    case 'multi':
      return html`<${MultiField} ...${props} />`;
    default:
      return html`<${JsonField} ...${props} />`;
  }
}

function EnumField({ ctx, s, value, path, name, required }) {
  const id = useId();
  const [sel, setSel] = useState(() => {
    const at = s.enum.findIndex((v) => v === value);
    return at >= 0 ? String(at) : '';
  });
  const error = useField(ctx, path, () => (sel === '' ? undefined : s.enum[Number(sel)]));
  return html`<${Shell} id=${id} path=${path} name=${name} s=${s} required=${required} error=${error}>
    <select ...${controlProps(id, required, error)} data-path=${path.join('.')} disabled=${ctx.readOnly} value=${sel} onChange=${(e) => setSel(e.currentTarget.value)}>
      <option value="">${s.default !== undefined ? `(default: ${brief(s.default)})` : '(unset)'}</option>
      ${s.enum.map((v, i) => html`<option value=${String(i)}>${String(v)}</option>`)}
    </select>
  <//>`;
}

function BooleanField({ ctx, s, value, path, name, required }) {
  const id = useId();
  const [sel, setSel] = useState(value === true ? 'true' : value === false ? 'false' : '');
  const error = useField(ctx, path, () => (sel === '' ? undefined : sel === 'true'));
  return html`<${Shell} id=${id} path=${path} name=${name} s=${s} required=${required} error=${error}>
    <select ...${controlProps(id, required, error)} data-path=${path.join('.')} disabled=${ctx.readOnly} value=${sel} onChange=${(e) => setSel(e.currentTarget.value)}>
      <option value="">${s.default !== undefined ? `(default: ${s.default})` : '(unset)'}</option>
      <option value="true">true</option>
      <option value="false">false</option>
    </select>
  <//>`;
}

function ScalarField({ ctx, s, value, path, name, required, kind }) {
  const id = useId();
  const [text, setText] = useState(value === undefined || value === null ? '' : String(value));
  const [long] = useState(() => kind === 'string' &&
    (MULTILINE.has(name) || Math.max(...[s, ...(branches(s) ?? [])].map((b) => b.maxLength ?? 0)) > 8192 ||
      (typeof value === 'string' && value.includes('\n'))));
  const allowsNumber = kind === 'number' || (kind === 'scalar' && (branches(s) ?? []).some((b) => b.type === 'integer' || b.type === 'number'));
  const error = useField(ctx, path, () => {
    if (text === '') return undefined;
    // A number field keeps unparsable text as a string, so the server's type error lands here.
    if (allowsNumber && NUMBERISH.test(text.trim())) return Number(text.trim());
    return text;
  });
  const common = { ...controlProps(id, required, error), 'data-path': path.join('.'), readOnly: ctx.readOnly, spellcheck: false, value: text, onInput: (e) => setText(e.currentTarget.value) };
  return html`<${Shell} id=${id} path=${path} name=${name} s=${s} required=${required} error=${error}>
    ${long
      ? html`<textarea ...${common} rows="4" />`
      : html`<input type="text" ...${common} inputmode=${kind === 'number' ? 'decimal' : undefined} autocomplete="off"
          placeholder=${s.pattern ? `pattern ${brief(s.pattern, 40)}` : undefined} />`}
  <//>`;
}

function ListField({ ctx, s, value, path, name, required }) {
  const id = useId();
  const [text, setText] = useState(Array.isArray(value) ? value.join('\n') : '');
  const numeric = s.items.type === 'integer' || s.items.type === 'number';
  const error = useField(ctx, path, () => {
    const items = text.split('\n').map((x) => x.trim()).filter((x) => x !== '');
    if (items.length === 0) return undefined;
    return numeric ? items.map((x) => (NUMBERISH.test(x) ? Number(x) : x)) : items;
  });
  return html`<${Shell} id=${id} path=${path} name=${name} s=${s} required=${required} error=${error}>
    <textarea ...${controlProps(id, required, error)} data-path=${path.join('.')} rows="3" readOnly=${ctx.readOnly} spellcheck=${false}
      placeholder="one value per line" value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
  <//>`;
}

function MultiField({ ctx, s, value, path, name, required }) {
  const id = useId();
  const [chosen, setChosen] = useState(() => new Set(Array.isArray(value) ? value : []));
  const optIds = useMemo(() => s.items.enum.map(() => nextId('opt')), []);
  const error = useField(ctx, path, () => {
    const out = s.items.enum.filter((v) => chosen.has(v));
    return out.length === 0 ? undefined : out;
  });
  const toggle = (v, on) => {
    const next = new Set(chosen);
    if (on) next.add(v);
    else next.delete(v);
    setChosen(next);
  };
  const dp = path.join('.');
  return html`<${Shell} id=${id} path=${path} name=${name} s=${s} required=${required} error=${error} group>
    <div ...${controlProps(id, required, error)} class="checks" role="group" aria-labelledby=${`${id}-label`}>
      ${s.items.enum.map((v, i) => html`<label class="check" for=${optIds[i]}>
        <input type="checkbox" id=${optIds[i]} checked=${chosen.has(v)} disabled=${ctx.readOnly} data-path=${`${dp}.${v}`}
          onChange=${(e) => toggle(v, e.currentTarget.checked)} />${String(v)}</label>`)}
    </div>
  <//>`;
}

function JsonField({ ctx, s, value, path, name, required }) {
  const id = useId();
  const [text, setText] = useState(value === undefined ? '' : JSON.stringify(value, null, 2));
  const error = useField(ctx, path, () => {
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (e) {
      ctx.fields.get(keyOf(path)).setError(`not valid JSON: ${e.message}`);
      throw new FieldError(`${path.join('.')}: not valid JSON`);
    }
  });
  return html`<${Shell} id=${id} path=${path} name=${`${name} (JSON)`} s=${s} required=${required} error=${error}>
    <textarea ...${controlProps(id, required, error)} class="json" data-path=${path.join('.')} rows="3" readOnly=${ctx.readOnly}
      spellcheck=${false} placeholder="JSON value" value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
  <//>`;
}

function ObjectField({ ctx, s, value, path, name, required, root = false, skip }) {
  const id = useId();
  const props = s.properties ?? {};
  const req = new Set(Array.isArray(s.required) ? s.required : []);
  const names = Object.keys(props).filter((k) => !(skip?.has(k)) && k !== '_meta');
  names.sort((a, b) => Number(req.has(b)) - Number(req.has(a)));
  const current = value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
  const error = useField(ctx, path, () => {
    const out = {};
    // Keys without a form field (unknown to the schema, _meta, skipped ones) are kept as they were.
    for (const [k, v] of Object.entries(current)) if (!names.includes(k)) out[k] = v;
    for (const k of names) {
      const v = ctx.fields.get(keyOf([...path, k])).get();
      if (v !== undefined) out[k] = v;
    }
    if (!root && Object.keys(out).length === 0) return undefined;
    return out;
  }, !root);
  const body = names.map((k) => html`<${Field} key=${k} ctx=${ctx} s=${props[k]} value=${current[k]} path=${[...path, k]} name=${k} required=${req.has(k)} />`);
  if (root) return body;
  return html`<details class="obj" open=${required || Object.keys(current).length > 0} data-field=${path.join('.')}>
    <summary>${name}${required ? ' *' : ''}${s.description ? html`<span class="muted"> — ${brief(s.description, 80)}</span>` : null}</summary>
    <${Shell} id=${id} path=${path} name=${name} s=${s} required=${required} error=${error} group>
      <span ...${controlProps(id, required, error)} class="obj-anchor" tabindex="-1" />
    <//>
    ${body}
  </details>`;
}
