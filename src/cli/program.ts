// The `vman` command tree (commander) and how its outcomes become exit codes:
// 0 done; 1 refused or failed (the problem's detail and status on stderr);
// 2 usage (unknown command or option, missing argument).
import { Command, CommanderError } from 'commander';
import { ApiError, UnreachableError } from './client.ts';
import { CliFailure, DEFAULT_URL } from './context.ts';
import { diskCommands } from './disk-commands.ts';
import { doctorCommand } from './doctor.ts';
import { observerCommands } from './observer-commands.ts';
import { SERVE_USAGE } from './serve.ts';
import { snapshotCommands } from './snapshot-commands.ts';
import { templateCommands } from './template-commands.ts';
import { packageVersion } from './version.ts';
import { vmCommands } from './vm-commands.ts';

export function buildProgram(): Command {
  const program = new Command('vman')
    .description('a QEMU virtual-machine manager: `vman serve` runs the API, the other commands talk to it')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--url <url>', `vman's address (env VMAN_URL, default ${DEFAULT_URL})`)
    .option('--token <token>', 'API token (env VMAN_API_TOKEN)')
    .option('--json', 'print the API\'s JSON instead of a table')
    // Set before the subcommands are added: they inherit both.
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });

  snapshotCommands(vmCommands(program));
  diskCommands(program);
  templateCommands(program);
  observerCommands(program);
  doctorCommand(program);
  // Dispatched before commander parses (cli.ts); listed here for `vman --help` and `vman help serve`.
  program.command('serve').description('run the vman API (see `vman serve --help` for its flags)').helpOption(false)
    .addHelpText('after', `\n${SERVE_USAGE}`);
  return program;
}

/** Runs the command; the exit code. */
export async function runProgram(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return exitCodeOf(err);
  }
}

function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) {
    // Help or version asked for: done. Anything else commander stops on is a usage error; it has printed why.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
    if (err.code === 'commander.help' && err.exitCode === 0) return 0;
    return 2;
  }
  if (err instanceof ApiError) {
    process.stderr.write(`vman: ${err.detail} (HTTP ${err.status} ${err.title})\n`);
    return 1;
  }
  if (err instanceof UnreachableError) {
    process.stderr.write(`vman: ${err.message}\n`);
    return 1;
  }
  if (err instanceof CliFailure) {
    if (err.message !== '') process.stderr.write(`vman: ${err.message}\n`);
    return err.exitCode;
  }
  throw err;
}
