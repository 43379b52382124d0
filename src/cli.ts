// `switchyard start|reload|validate|version`. start runs in the foreground until SIGTERM/SIGINT, then drains and
// exits 0; reload validates config.yaml and sends SIGHUP to the pid recorded by start (src/reload.ts).
import cluster from 'node:cluster';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isSwitchyardError } from './errors.ts';
import { VERSION } from './version.ts';

const USAGE = `usage: switchyard <command> [-c conf/config.yaml]
  start      run the gateway in the foreground (SIGTERM/SIGINT: drain and exit)
  reload     validate config.yaml, then make the running gateway re-read it (SIGHUP to <config dir>/logs/switchyard.pid)
  validate   check config.yaml (and the standalone file when that provider is selected)
  version    print the version`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c', default: 'conf/config.yaml' }, help: { type: 'boolean', short: 'h' } },
  });
  const cmd = positionals[0];
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (cmd === 'version') {
    console.log(VERSION);
    return 0;
  }
  if (cmd !== 'start' && cmd !== 'validate' && cmd !== 'reload') {
    console.error(cmd === undefined ? USAGE : `unknown command "${cmd}"\n${USAGE}`);
    return 2;
  }
  const file = values.config!;
  // Loaded after `version`/usage so those answer without compiling the config schema.
  const { configProvider, ensureAdminKey, loadLocalConfig, standaloneFile } = await import('./config/local.ts');
  const loaded = await loadLocalConfig(file);
  if (!loaded.ok) {
    console.error(`invalid configuration in ${file}:`);
    for (const e of loaded.errors) console.error(`  - ${e}`);
    return 1;
  }
  const conf = loaded.config;
  if (cmd === 'reload') {
    const { pidFilePath, readPidFile } = await import('./reload.ts');
    const rec = readPidFile(file);
    if ('error' in rec) {
      console.error(`switchyard: ${rec.error}`);
      return 1;
    }
    try {
      process.kill(rec.pid, 'SIGHUP');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      console.error(`switchyard: cannot signal pid ${rec.pid} from ${pidFilePath(file)}: ${code === 'ESRCH' ? 'not running (stale pid file)' : (err as Error).message}`);
      return 1;
    }
    console.log(`reload requested (SIGHUP sent to pid ${rec.pid}); the gateway logs what was applied`);
    return 0;
  }
  if (cmd === 'validate') {
    for (const w of loaded.warnings) console.error(`warning: ${w}`);
    const provider = configProvider(conf);
    if (provider !== 'etcd') {
      const { validateStandaloneFile } = await import('./config/validate-standalone.ts');
      const path = standaloneFile(conf, loaded.file);
      let text: string | null = null;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          console.error(`cannot read ${path}: ${(err as Error).message}`);
          return 1;
        }
        console.log(`${path}: not present (starts empty)`);
      }
      if (text !== null) {
        const errors = validateStandaloneFile(text, path, conf);
        if (errors.length > 0) {
          console.error(`invalid standalone configuration in ${path}:`);
          for (const e of errors) console.error(`  - ${e}`);
          return 1;
        }
      }
    }
    console.log(`${file}: configuration is valid`);
    return 0;
  }
  if (cmd === 'start') {
    // Cluster workers re-run this entry point; only the primary (or the single process) owns the key.
    const generated = cluster.isWorker ? [] : await ensureAdminKey(loaded.file, conf);
    // Printed once, on the terminal only (never through the logger), as APISIX does.
    for (const k of generated) {
      process.stderr.write(
        k.saved
          ? `generated admin API key "${k.key}" for "${k.name}" (saved to ${loaded.file})\n`
          : `generated admin API key "${k.key}" for "${k.name}" for this run only (${k.reason})\n`,
      );
    }
    if (!cluster.isWorker) {
      // The data-encryption key of the Admin-written standalone file, generated once like the admin key and
      // never printed.
      const { ensureDataKeyring } = await import('./config/keyring.ts');
      const k = await ensureDataKeyring(loaded.file, conf);
      if (k.generated) process.stderr.write(`generated apisix.data_encryption.keyring (saved to ${loaded.file})\n`);
    }
    if (!cluster.isWorker && loaded.warnings.length > 0) {
      const { getLogger } = await import('./observability/logger.ts');
      const log = getLogger('config');
      for (const w of loaded.warnings) log.warn({ file: loaded.file }, w);
    }
    const { runGateway } = await import('./main.ts');
    await runGateway(conf, loaded.file);
    return -1;
  }
  return 2;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    // Operational failures (store unreachable, port in use, unreadable file) are reported by message; anything
    // else is a bug and keeps its stack.
    const operational = isSwitchyardError(err) || (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string');
    console.error(`switchyard: ${err instanceof Error ? (operational ? err.message : (err.stack ?? err.message)) : String(err)}`);
    process.exit(1);
  },
);
