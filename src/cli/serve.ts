// `vman serve`: runs the API; its flags match the environment variables
// (--storage = VMAN_STORAGE_PATH, ...). Parsed on its own (node:util), as
// before the other commands existed, so its flags and exit codes stay the same.
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, SETTINGS, type SettingName } from '../config.ts';
import { createVman } from '../server.ts';

export const SERVE_USAGE = `usage: vman serve [options]

options (each also read from the environment variable shown):
${Object.entries(SETTINGS).map(([flag, env]) => `  --${flag.padEnd(18)} ${env}`).join('\n')}
  --help`;

export async function serve(rest: string[]): Promise<number> {
  const options = Object.fromEntries(Object.keys(SETTINGS).map((k) => [k, { type: 'string' as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals: false });
  } catch (err) {
    process.stderr.write(`vman: ${(err as Error).message}\n${SERVE_USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  const flags = Object.fromEntries(Object.entries(parsed.values).filter(([k, v]) => k !== 'help' && typeof v === 'string')) as Partial<Record<SettingName, string>>;

  let config;
  try {
    config = loadConfig(process.env, flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`vman: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const vman = await createVman(config, { logger: { level: process.env.VMAN_LOG_LEVEL ?? 'info' } });
  const url = await vman.listen();
  vman.app.log.info(`vman serving on ${url}; storage ${config.storagePath}; database ${config.dbPath}; accelerator ${vman.host.accelerator}`);

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  vman.app.log.info('shutting down; running VMs keep running and are adopted at the next start');
  await vman.close();
  return 0;
}
