// `npm run test:rerun`: runs again just the scenarios the last run failed,
// which cucumber's rerun formatter listed in reports/@rerun.txt. The list is
// copied first: the new run's own rerun formatter rewrites that file. (A rerun
// file's name starts with @: that is how cucumber tells it from a feature.)
import { copyFileSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const list = 'reports/@rerun.txt';
let failed = '';
try {
  failed = readFileSync(list, 'utf8').trim();
} catch {
  console.error(`no ${list}: run the suite first (npm run test:acceptance)`);
  process.exit(2);
}
if (failed === '') {
  console.log(`no failed scenarios in ${list}`);
  process.exit(0);
}
copyFileSync(list, 'reports/@rerun.last.txt');
const run = spawnSync('npx', ['cucumber-js', 'reports/@rerun.last.txt', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? 1);
