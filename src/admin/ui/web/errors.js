// Maps an Admin API validation message to the key path it concerns, from the nesting prefixes APISIX's
// validator writes: `property "x" validation failed: `, `failed to validate item N: `,
// `failed to validate k (matching "p"): `, `failed to validate additional property k: `, and a leaf
// `property "x" is required`. Plugin errors start with `failed to check the configuration of plugin <name> err: `
// (or `... of stream plugin [<name>]: `) and concern plugins.<name>.

const NESTING = [
  [/^property "((?:[^"\\]|\\.)*)" validation failed: /, (m) => m[1]],
  [/^failed to validate item (\d+): /, (m) => String(Number(m[1]) - 1)],
  [/^failed to validate (\S+) \(matching "(?:[^"\\]|\\.)*"\): /, (m) => m[1]],
  [/^failed to validate additional property (\S+): /, (m) => m[1]],
  [/^failed to validate dependent schema for "(?:[^"\\]|\\.)*": /, () => null],
  [/^allOf \d+ failed: /, () => null],
];

/** { path: string[], reason: string } for a message (path empty when it names no field). */
export function errorPath(message) {
  let rest = String(message ?? '');
  const path = [];
  let m = /^failed to check the configuration of (?:stream )?plugin \[?([^\]\s]+?)\]?(?: err)?: /.exec(rest);
  if (m) {
    path.push('plugins', m[1]);
    rest = rest.slice(m[0].length);
  } else {
    m = /^invalid (?:configuration|plugins configuration): /.exec(rest);
    if (m) rest = rest.slice(m[0].length);
  }
  for (;;) {
    let matched = false;
    for (const [re, seg] of NESTING) {
      const n = re.exec(rest);
      if (n) {
        const s = seg(n);
        if (s !== null) path.push(s);
        rest = rest.slice(n[0].length);
        matched = true;
        break;
      }
    }
    if (!matched) break;
  }
  const req = /^property "((?:[^"\\]|\\.)*)" is required/.exec(rest);
  if (req) path.push(req[1]);
  return { path, reason: rest };
}
