// The `vman` command: `vman serve` runs the API; every other command talks to
// a running vman over it (src/cli/).
import { runProgram } from './cli/program.ts';
import { serve } from './cli/serve.ts';

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'serve') return serve(rest);
  return runProgram(argv);
}
