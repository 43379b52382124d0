// ${{VAR}} and ${{VAR:=default}} substitution (APISIX config.yaml and apisix.yaml), applied to the raw text.
const PATTERN = /\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?)\s*)?\}\}/g;

export type SubstResult = { ok: true; text: string } | { ok: false; error: string };

export function substituteEnv(text: string, env: NodeJS.ProcessEnv = process.env): SubstResult {
  const missing: string[] = [];
  const replace = (_m: string, name: string, def: string | undefined): string => {
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (def !== undefined) return def;
    missing.push(name);
    return '';
  };
  // Comment lines are left alone, so documentation may mention the syntax.
  const out = text
    .split('\n')
    .map((line) => (/^\s*#/.test(line) ? line : line.replace(PATTERN, replace)))
    .join('\n');
  if (missing.length > 0) {
    return { ok: false, error: `can't find environment variable ${[...new Set(missing)].join(', ')}` };
  }
  return { ok: true, text: out };
}
