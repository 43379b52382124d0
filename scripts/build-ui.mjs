#!/usr/bin/env node
// Builds the dashboard (src/admin/ui/web: Preact components written with htm tagged templates, plain ES
// modules and one CSS file) into build/ui, which the Admin listener serves at /ui/ (src/admin/ui/serve.ts).
// esbuild bundles and minifies in well under a second with no plugin chain; Preact (~4 KB gzip) gives
// components and hooks; htm (<1 KB) keeps the sources standard JavaScript, so no JSX transform and eslint reads
// them as they are. Output names carry a content hash (served as immutable); index.html names them.
//
// Runs from `npm install`/`npm ci` (postinstall) and `npm start` (prestart, with --if-stale: only when a
// source or this script is newer than the build, or preact/htm changed version). esbuild, preact and htm are dev
// dependencies (preact and htm are bundled, never loaded at runtime): an install that omits them gets a warning
// and no build, and the dashboard then answers 503 saying so.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE_DIR = path.join(ROOT, 'src/admin/ui/web');
export const OUT_DIR = path.join(ROOT, 'build/ui');
/** The bundled packages: npm gives their files a fixed old mtime, so their versions are compared instead. */
const PACKAGES = ['preact', 'htm'];
/** Written last into the build (no extension: not served); names the package versions it was built from. */
const STAMP = '.build-stamp';

function packageVersions() {
  return PACKAGES.map((name) => {
    const file = path.join(ROOT, 'node_modules', name, 'package.json');
    return `${name}@${existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).version : 'missing'}`;
  }).join(' ');
}

function newestMtime(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/** True when build/ui is missing, older than a source or this script, or built from other package versions. */
export function isStale() {
  const stamp = path.join(OUT_DIR, STAMP);
  const built = statSync(stamp, { throwIfNoEntry: false });
  if (built === undefined || readFileSync(stamp, 'utf8') !== packageVersions()) return true;
  return Math.max(newestMtime(SOURCE_DIR), statSync(fileURLToPath(import.meta.url)).mtimeMs) > built.mtimeMs;
}

/**
 * Builds into a private directory and moves it into place with two renames (the old build out, the new one in),
 * so build/ui never holds a partly written build. The swap is not atomic: between the renames build/ui does not
 * exist, and a gateway that loads the dashboard while the swap runs may find none or only part of one.
 * Resolves to the built files with their sizes, or null without esbuild.
 */
export async function buildUi() {
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    console.warn('build-ui: esbuild is not installed (dev dependencies omitted); the dashboard is not built');
    return null;
  }
  const tmp = `${OUT_DIR}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const result = await esbuild.build({
      entryPoints: { app: path.join(SOURCE_DIR, 'main.js'), style: path.join(SOURCE_DIR, 'app.css') },
      bundle: true,
      format: 'esm',
      target: 'es2022',
      minify: true,
      outdir: tmp,
      entryNames: '[name]-[hash]',
      metafile: true,
      logLevel: 'warning',
    });
    const outputs = {};
    for (const [file, meta] of Object.entries(result.metafile.outputs)) {
      if (meta.entryPoint !== undefined) outputs[path.extname(file)] = path.basename(file);
    }
    // The template names the unhashed files; the built page names the hashed ones.
    let index = readFileSync(path.join(SOURCE_DIR, 'index.html'), 'utf8');
    for (const [placeholder, built] of [['/ui/app.js', outputs['.js']], ['/ui/app.css', outputs['.css']]]) {
      if (built === undefined || !index.includes(`"${placeholder}"`)) throw new Error(`build-ui: index.html has no "${placeholder}" to point at the build`);
      index = index.replace(`"${placeholder}"`, `"/ui/${built}"`);
    }
    copyFileSync(path.join(SOURCE_DIR, 'favicon.svg'), path.join(tmp, 'favicon.svg'));
    writeFileSync(path.join(tmp, 'index.html'), index);
    writeFileSync(path.join(tmp, STAMP), packageVersions());
    swapIn(tmp);
    return Object.values(outputs).map((name) => {
      const body = readFileSync(path.join(OUT_DIR, name));
      return { name, bytes: body.length, gzip: gzipSync(body).length };
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function swapIn(tmp) {
  const old = `${OUT_DIR}.old-${process.pid}`;
  mkdirSync(path.dirname(OUT_DIR), { recursive: true });
  if (existsSync(OUT_DIR)) renameSync(OUT_DIR, old);
  try {
    renameSync(tmp, OUT_DIR);
  } catch (err) {
    // Another build (a parallel test file) swapped its identical output in first.
    if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
  }
  rmSync(old, { recursive: true, force: true });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  if (process.argv.includes('--if-stale') && !isStale()) process.exit(0);
  const files = await buildUi();
  if (files !== null) {
    const list = files.map((f) => `${f.name} ${(f.bytes / 1024).toFixed(1)} KB (${(f.gzip / 1024).toFixed(1)} KB gzip)`).join(', ');
    console.log(`build-ui: ${path.relative(ROOT, OUT_DIR)}: ${list}`);
  }
}
