#!/usr/bin/env node
// Entry point of the `vman` command: loads the TypeScript sources through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`vman: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
