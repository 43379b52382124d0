// Create/edit pages: a form generated from the kind's schema plus one generated form per plugin (from the
// plugin's schema), or the raw JSON of the whole object. Save goes through the Admin API; a validation error
// is shown next to the field its key path names, and in full at the top.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, errorText, session } from './api.js';
import { errorPath } from './errors.js';
import { announce, report } from './feedback.js';
import { html } from './html.js';
import { SERVER_FIELDS } from './kinds.js';
import { basePath, idPath, routeBase } from './list.js';
import { PageHead } from './page.js';
import { FieldError, SchemaForm } from './schema-form.js';

// Schemas and the plugin list are fetched once per page load: they change only with a plugin reload or an
// upgrade, after which reloading the page picks them up.
const schemaCache = new Map();

async function getJson(path) {
  if (schemaCache.has(path)) return schemaCache.get(path);
  const r = await api('GET', path);
  const out = r.ok ? r.body : null;
  if (r.ok) schemaCache.set(path, out);
  return out;
}

/** A plugin's schema for this kind: consumers use the consumer schema of auth plugins. */
async function pluginSchema(kind, name) {
  const stream = kind.streamPlugins ? '&subsystem=stream' : '';
  if (kind.pluginSchema === 'consumer' || kind.name === 'credentials') {
    const c = await getJson(`/plugins/${encodeURIComponent(name)}?schema_type=consumer${stream}`);
    if (c) return c;
  }
  return (await getJson(`/plugins/${encodeURIComponent(name)}?${stream.slice(1)}`)) ?? { type: 'object' };
}

function clean(v) {
  const out = { ...v };
  for (const k of SERVER_FIELDS) delete out[k];
  return out;
}

async function loadEditor(kind, id) {
  let value = {};
  if (id !== null) {
    const r = await api('GET', `${basePath(kind)}/${idPath(id)}`);
    if (!r.ok) return { error: errorText(r) };
    value = clean(r.body?.value ?? {});
  }
  const coreSchema = kind.metadata ? { type: 'object', properties: {} } : ((await getJson(`/schema/${kind.name}`)) ?? {});
  const pluginNames = kind.noPlugins && !kind.metadata ? [] : ((await getJson(`/plugins/list${kind.streamPlugins ? '?subsystem=stream' : ''}`)) ?? []);
  return { value, coreSchema, pluginNames };
}

export function EditorPage({ kind, id }) {
  const [loaded, setLoaded] = useState(null);
  useEffect(() => {
    loadEditor(kind, id).then(setLoaded, report);
  }, []);
  if (loaded === null) return html`<p class="muted">Loading…</p>`;
  if (loaded.error !== undefined) {
    return html`<${PageHead} title=${`${kind.singular} ${id}`} /><p class="error" role="alert">${loaded.error}</p>`;
  }
  return html`<${Editor} kind=${kind} id=${id} ...${loaded} />`;
}

function PluginCard({ kind, name, conf, ro, formRef, onRemove, focus }) {
  const [schema, setSchema] = useState(null);
  const ref = useRef(null);
  useEffect(() => {
    pluginSchema(kind, name).then(setSchema, report);
  }, []);
  useEffect(() => {
    if (schema !== null && focus) ref.current.querySelector('input,select,textarea')?.focus();
  }, [schema]);
  return html`<section class="plugin card" data-plugin=${name} aria-label=${`plugin ${name}`} ref=${ref}>
    <div class="card-head">
      <h3>${name}</h3>
      ${!ro && html`<button type="button" class="small danger" aria-label=${`Remove plugin ${name}`} onClick=${onRemove}>Remove</button>`}
    </div>
    ${schema === null
      ? html`<p class="muted">Loading the schema…</p>`
      : html`<${SchemaForm} schema=${schema} value=${conf} basePath=${['plugins', name]} readOnly=${ro} formRef=${formRef} />`}
  </section>`;
}

/** The metadata form of the chosen plugin (plugin_metadata objects are keyed by plugin name). */
function MetadataForm({ name, conf, ro, formRef }) {
  const [schema, setSchema] = useState(undefined);
  useEffect(() => {
    getJson(`/plugins/${encodeURIComponent(name)}?schema_type=metadata`).then(setSchema, report);
  }, []);
  if (schema === undefined) return html`<p class="muted">Loading the schema…</p>`;
  if (schema === null) {
    formRef.current = null;
    return html`<p class="error">plugin ${name} has no metadata schema</p>`;
  }
  return html`<${SchemaForm} schema=${schema} value=${conf} readOnly=${ro} formRef=${formRef} />`;
}

function Editor({ kind, id, value, coreSchema, pluginNames }) {
  const ro = session.readOnly;
  const isNew = id === null;
  const jsonOnly = !coreSchema.properties;
  const [mode, setMode] = useState(jsonOnly ? 'json' : 'form');
  // The object the forms were last built from; `gen` remounts them when it is replaced from the JSON text.
  const [base, setBase] = useState({ value, gen: 0 });
  const [plugins, setPlugins] = useState(() => Object.keys(value.plugins ?? {}));
  const [added, setAdded] = useState(null);
  const [picked, setPicked] = useState('');
  const [metaName, setMetaName] = useState(kind.metadata && !isNew ? id : null);
  const [jsonText, setJsonText] = useState(jsonOnly ? JSON.stringify(value, null, 2) : '');
  const [general, setGeneral] = useState(null);
  const [placed, setPlaced] = useState(0);
  const [idText, setIdText] = useState('');
  const rootRef = useRef(null);
  const metaRef = useRef(null);
  const pluginRefs = useRef(new Map());
  const mainRef = useRef(null);

  const pluginRef = (name) => {
    let r = pluginRefs.current.get(name);
    if (r === undefined) {
      r = { current: null };
      pluginRefs.current.set(name, r);
    }
    return r;
  };

  useEffect(() => {
    const first = isNew && kind.id !== 'body' && !kind.metadata
      ? document.getElementById('obj-id')
      : mainRef.current?.querySelector('.form-area input, .form-area select, .form-area textarea');
    first?.focus();
  }, []);
  useEffect(() => {
    if (placed > 0) mainRef.current?.querySelector('[aria-invalid="true"]')?.focus();
  }, [placed]);

  /** The object as the form (or JSON box) describes it. Throws FieldError/SyntaxError on bad input. */
  const collect = () => {
    if (mode === 'json') return JSON.parse(jsonText);
    if (kind.metadata) return metaRef.current ? metaRef.current.get() : {};
    const v = rootRef.current.get();
    delete v.id;
    if (!kind.noPlugins) {
      const p = {};
      // A card whose schema is still loading has no form yet: its configuration is the one it was opened with.
      for (const name of plugins) p[name] = pluginRefs.current.get(name)?.current?.get() ?? base.value.plugins?.[name] ?? {};
      if (plugins.length > 0) v.plugins = p;
      else delete v.plugins;
    }
    return clean(v);
  };

  const showErrors = (message) => {
    setGeneral(message);
    if (mode === 'json') return;
    const { path, reason } = errorPath(message);
    if (path.length === 0) return;
    let form = rootRef.current;
    if (path[0] === 'plugins' && plugins.includes(path[1])) form = pluginRefs.current.get(path[1])?.current;
    else if (kind.metadata) form = metaRef.current;
    if (form?.showError(path, reason)) setPlaced((n) => n + 1);
  };

  const clearErrors = () => {
    rootRef.current?.clearErrors();
    metaRef.current?.clearErrors();
    for (const r of pluginRefs.current.values()) r.current?.clearErrors();
    setGeneral(null);
  };

  const save = async (e) => {
    e.preventDefault();
    clearErrors();
    let body;
    try {
      body = collect();
    } catch (err) {
      return showErrors(err instanceof FieldError ? err.message : `invalid JSON: ${err.message}`);
    }
    const b = basePath(kind);
    let method = 'PUT';
    let path;
    if (kind.metadata) {
      if (!metaName) return showErrors('choose a plugin');
      path = `${b}/${encodeURIComponent(metaName)}`;
    } else if (!isNew) {
      path = `${b}/${idPath(id)}`;
      if (kind.id === 'body') {
        body[kind.idField] = id;
        path = b;
      }
      // The Admin API never returns SSL private keys; without a new one, merge so the stored key is kept.
      if (kind.name === 'ssls' && !body.key && !body.keys) method = 'PATCH';
    } else if (kind.id === 'body') {
      path = b;
    } else if (idText.trim() !== '') {
      path = `${b}/${idPath(idText.trim())}`;
    } else if (kind.id === 'optional') {
      method = 'POST';
      path = b;
    } else {
      return showErrors(`an id is required for a ${kind.singular}`);
    }
    const r = await api(method, path, body);
    if (!r.ok) return showErrors(errorText(r));
    announce(`Saved ${kind.singular} ${r.body?.value?.id ?? r.body?.value?.username ?? ''}`.trim());
    location.hash = routeBase(kind);
  };

  const switchTo = (m) => {
    if (mode === m) return;
    if (m === 'json') {
      try {
        setJsonText(JSON.stringify(collect(), null, 2));
      } catch (err) {
        return showErrors(err.message);
      }
    } else {
      let v;
      try {
        v = JSON.parse(jsonText);
      } catch (err) {
        return showErrors(`invalid JSON: ${err.message}`);
      }
      pluginRefs.current.clear();
      setBase({ value: v, gen: base.gen + 1 });
      setPlugins(Object.keys(v.plugins ?? {}));
    }
    setGeneral(null);
    setMode(m);
  };

  const addPlugin = () => {
    if (picked === '' || plugins.includes(picked)) return;
    setPlugins([...plugins, picked]);
    setAdded(picked);
    setPicked('');
  };
  const removePlugin = (name) => {
    pluginRefs.current.delete(name);
    setPlugins(plugins.filter((n) => n !== name));
  };

  const title = isNew ? `Create ${kind.singular}` : `${ro ? 'View' : 'Edit'} ${kind.singular} ${id}`;
  const v = base.value;
  let formArea;
  if (kind.metadata) {
    formArea = html`<div class="field">
        <label for="meta-plugin">Plugin *</label>
        <select id="meta-plugin" disabled=${!isNew || ro} value=${metaName ?? ''} onChange=${(e) => setMetaName(e.currentTarget.value || null)}>
          <option value="">(choose a plugin)</option>
          ${(isNew ? pluginNames : [id]).map((n) => html`<option value=${n}>${n}</option>`)}
        </select>
      </div>
      ${metaName && html`<${MetadataForm} key=${`${metaName}/${base.gen}`} name=${metaName} conf=${metaName === id || base.gen > 0 ? v : {}} ro=${ro} formRef=${metaRef} />`}`;
  } else if (jsonOnly) {
    formArea = html`<p class="muted">This kind has several shapes; edit it as JSON.</p>`;
  } else {
    formArea = html`<${SchemaForm} key=${base.gen} schema=${coreSchema} value=${v} readOnly=${ro} formRef=${rootRef}
      skip=${['id', 'plugins', ...SERVER_FIELDS, ...(kind.id === 'body' && !isNew ? [kind.idField] : [])]} />`;
  }
  const pluginArea = !kind.noPlugins && html`<section class="plugins" aria-labelledby="plugins-h" hidden=${mode === 'json'}>
    <h2 id="plugins-h">Plugins</h2>
    <div class="plugin-list">
      ${plugins.map((name) => html`<${PluginCard} key=${`${name}/${base.gen}`} kind=${kind} name=${name} conf=${v.plugins?.[name] ?? {}} ro=${ro}
        formRef=${pluginRef(name)} onRemove=${() => removePlugin(name)} focus=${name === added} />`)}
    </div>
    ${!ro && html`<div class="add-plugin">
      <label for="add-plugin">Add plugin</label>
      <select id="add-plugin" value=${picked} onChange=${(e) => setPicked(e.currentTarget.value)}>
        <option value="">(choose a plugin)</option>
        ${pluginNames.map((n) => html`<option value=${n}>${n}</option>`)}
      </select>
      <button type="button" id="add-plugin-btn" onClick=${addPlugin}>Add</button>
    </div>`}
  </section>`;

  return html`<div ref=${mainRef}>
    <${PageHead} title=${title}>
      <div class="tabs" role="group" aria-label="Editor mode" hidden=${jsonOnly}>
        <button type="button" class="tab" id="mode-form" aria-pressed=${String(mode === 'form')} onClick=${() => switchTo('form')}>Form</button>
        <button type="button" class="tab" id="mode-json" aria-pressed=${String(mode === 'json')} onClick=${() => switchTo('json')}>JSON</button>
      </div>
    <//>
    <form class="editor" noValidate onSubmit=${(e) => save(e).catch(report)}>
      <div class="error" role="alert" id="form-error" hidden=${general === null}>${general ?? ''}</div>
      ${isNew && kind.id !== 'body' && !kind.metadata && html`<div class="field">
        <label for="obj-id">${kind.id === 'required' ? 'ID *' : 'ID'}</label>
        <input type="text" id="obj-id" autocomplete="off" value=${idText} onInput=${(e) => setIdText(e.currentTarget.value)}
          placeholder=${kind.idHint ?? (kind.id === 'optional' ? 'empty: generated by the server' : '')} />
      </div>`}
      <div class="form-area" hidden=${mode === 'json' && !jsonOnly}>${formArea}</div>
      ${pluginArea}
      <div class="raw-wrap" hidden=${mode !== 'json'}>
        <label for="raw-json">Raw JSON of the whole object</label>
        <textarea id="raw-json" class="json raw" rows="24" readOnly=${ro} spellcheck=${false} aria-label="Raw JSON"
          value=${jsonText} onInput=${(e) => setJsonText(e.currentTarget.value)} />
      </div>
      <div class="actions">
        ${ro ? html`<p class="muted">Read-only: the viewer role cannot change the configuration.</p>` : html`<button type="submit" class="primary" id="save">Save</button>`}
        <a href=${routeBase(kind)} class="btn">${ro ? 'Back' : 'Cancel'}</a>
      </div>
    </form>
  </div>`;
}
