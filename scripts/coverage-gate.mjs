// The coverage gate: the totals of reports/coverage/coverage-summary.json (the
// last `scripts/coverage.sh`) against the thresholds in .c8rc.json. Prints one
// line and exits 1 under the gate, 2 when there is nothing to judge.
import { existsSync, readFileSync } from 'node:fs';

const summaryFile = 'reports/coverage/coverage-summary.json';
if (!existsSync(summaryFile)) {
  console.log(`coverage: no ${summaryFile} (scripts/coverage.sh did not finish)`);
  process.exit(2);
}
const gate = JSON.parse(readFileSync('.c8rc.json', 'utf8'));
const total = JSON.parse(readFileSync(summaryFile, 'utf8')).total;
const under = ['lines', 'branches'].filter((k) => total[k].pct < gate[k]);
console.log(`coverage of src/: ${total.lines.pct} % of lines (gate ${gate.lines} %), ${total.branches.pct} % of branches (gate ${gate.branches} %)` +
  (under.length ? ` — under the gate: ${under.join(', ')}` : ''));
process.exit(under.length ? 1 : 0);
