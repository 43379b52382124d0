// `switchyard start|validate|version`. start runs in the foreground until SIGTERM/SIGINT, then drains and exits 0.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { configProvider, ensureAdminKey, loadLocalConfig, standaloneFile } from './config/local.ts';
import { VERSION } from './version.ts';

const USAGE = `usage: switchyard <command> [-c conf/config.yaml]
  start      run the gateway in the foreground (SIGTERM/SIGINT: drain and exit)
  validate   check config.yaml (and the standalone file when that provider is selected)
  version    print the version`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c', default: 'conf/config.yaml' }, help: { type: 'boolean', short: 'h' } },
  });
  const cmd = positionals[0];
  if (values.help || cmd === undefined) {
    console.log(USAGE);
    return cmd === undefined && !values.help ? 2 : 0;
  }
  if (cmd === 'version') {
    console.log(VERSION);
    return 0;
  }
  const file = values.config!;
  const loaded = await loadLocalConfig(file);
  if (!loaded.ok) {
    console.error(`invalid configuration in ${file}:`);
    for (const e of loaded.errors) console.error(`  - ${e}`);
    return 1;
  }
  const conf = loaded.config;
  if (cmd === 'validate') {
    const provider = configProvider(conf);
    if (provider !== 'etcd') {
      const { validateStandaloneFile } = await import('./config/validate-standalone.ts');
      const path = standaloneFile(conf, loaded.file);
      let text: string | null = null;
      try {
        text = await readFile(path, 'utf8');
      } catch {
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
    const key = await ensureAdminKey(loaded.file, conf);
    if (key !== null) {
      // Printed once, on the terminal only (never through the logger), as APISIX does.
      process.stderr.write(`generated admin API key "${key}" (saved to ${loaded.file})\n`);
    }
    const { runGateway } = await import('./main.ts');
    await runGateway(conf, loaded.file);
    return -1;
  }
  console.error(USAGE);
  return 2;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
