// secrets (`/secrets/{manager}/{id}`): manager is vault, aws or gcp; stored id and value id are
// `<manager>/<id>`; no POST.
import type { KindSpec } from './kind.ts';
import { errorReply } from './envelope.ts';

const MANAGERS = new Set(['vault', 'aws', 'gcp']);

export const secretsSpec: KindSpec = {
  kind: 'secrets',
  unsupported: ['POST'],
  parsePath: (segs) => {
    if (segs.length === 0) return { scope: '', id: undefined, subPath: [] };
    const manager = segs[0]!;
    if (!MANAGERS.has(manager)) return errorReply(400, `invalid secret manager: ${manager}`);
    return { scope: `${manager}/`, id: segs[1], subPath: segs.slice(2) };
  },
  assignId: (target, value, need) => {
    if (!need) return { error: 'wrong secret id, do not need it' };
    if (target.id === undefined) return { error: 'missing secret id' };
    const full = target.scope + target.id;
    if (value.id !== undefined && value.id !== null && String(value.id) !== full) return { error: 'wrong secret id' };
    value.id = full;
    return { storeId: full };
  },
};
