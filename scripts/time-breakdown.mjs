// Where the acceptance suite's time goes, from one run's Cucumber messages:
// every step's and hook's duration summed by kind (VM starts cold and warm,
// vman start-ups, the crash outline, guest-agent waits, the judge, teardown),
// and the run's wall time. Step time is the sum over both workers, so it is
// about twice the wall time with --parallel 2.
//
//   node scripts/time-breakdown.mjs reports/cucumber.ndjson [--json]
import { readFileSync } from 'node:fs';

const toMs = (ts) => Number(ts.seconds) * 1000 + Number(ts.nanos ?? 0) / 1e6;
const durationMs = (d) => Number(d.seconds) * 1000 + Number(d.nanos ?? 0) / 1e6;

/**
 * Kinds, first match wins: by the feature a step runs in (the crash outline's
 * steps are its restarts and crashes), then by the step definition's pattern
 * or the hook's name. A VM start is "warm" when its scenario's timings say
 * the VM came up as a clone (support/vm-tasks.ts records "resume VM ...").
 */
const KINDS = [
  { kind: 'crash outline (vman killed and started again, VMs and all)', feature: /crash\.feature$/ },
  { kind: 'judge after each scenario', hook: /whole system judged/ },
  { kind: 'evidence and teardown', hook: /teardown|watches/ },
  { kind: 'other hooks', hook: /./ },
  { kind: 'vman start-ups', pattern: /^vman (is running|runs|is started|is restarted|is killed)|vman serve|^the operator restarts vman|storage is started|separate process/ },
  { kind: 'VM starts (boots and clones)', pattern: /running VMs?\b|is started|are started|is restarted|restart|boot|Debian VM/i },
  { kind: 'guest-agent waits and guest reads', pattern: /guest|agent|console|inside/i },
  { kind: 'disks', pattern: /disk/i },
  { kind: 'other steps', pattern: /./ },
];

export function breakdown(messages) {
  const stepDefs = new Map();
  const hooks = new Map();
  const pickles = new Map();
  const testCases = new Map();
  const attempts = new Map();
  const totals = new Map();
  const warm = { resumes: 0, resumeMs: 0, boots: 0, bootMs: 0 };
  let first = Infinity;
  let last = 0;
  for (const m of messages) {
    if (m.stepDefinition) stepDefs.set(m.stepDefinition.id, m.stepDefinition.pattern.source);
    else if (m.hook) hooks.set(m.hook.id, m.hook.name ?? m.hook.tagExpression ?? 'hook');
    else if (m.pickle) pickles.set(m.pickle.id, m.pickle);
    else if (m.testCase) testCases.set(m.testCase.id, m.testCase);
    else if (m.testCaseStarted) attempts.set(m.testCaseStarted.id, m.testCaseStarted.testCaseId);
    else if (m.testRunStarted) first = Math.min(first, toMs(m.testRunStarted.timestamp));
    else if (m.testRunFinished) last = Math.max(last, toMs(m.testRunFinished.timestamp));
    else if (m.attachment?.mediaType === 'application/vnd.vman.timings+json') {
      for (const e of JSON.parse(m.attachment.body).entries) {
        if (e.status !== null && (e.status < 200 || e.status > 299)) continue;
        if (e.kind === 'resume') { warm.resumes += 1; warm.resumeMs += e.ms; }
        else if (e.kind === 'boot') { warm.boots += 1; warm.bootMs += e.ms; }
      }
    } else if (m.testStepFinished) {
      const f = m.testStepFinished;
      const testCase = testCases.get(attempts.get(f.testCaseStartedId));
      const step = testCase?.testSteps.find((s) => s.id === f.testStepId);
      if (!step) continue;
      const pickle = pickles.get(testCase.pickleId);
      const pattern = step.stepDefinitionIds?.length ? stepDefs.get(step.stepDefinitionIds[0]) : undefined;
      const hook = step.hookId ? hooks.get(step.hookId) : undefined;
      const kind = KINDS.find((k) =>
        (k.feature && k.feature.test(pickle?.uri ?? '') && !hook) ||
        (k.hook && hook !== undefined && k.hook.test(hook)) ||
        (k.pattern && pattern !== undefined && k.pattern.test(pattern)))?.kind ?? 'other steps';
      const ms = durationMs(f.testStepResult.duration);
      const t = totals.get(kind) ?? { ms: 0, count: 0 };
      t.ms += ms;
      t.count += 1;
      totals.set(kind, t);
    }
  }
  const rows = KINDS.map((k) => ({ kind: k.kind, ...(totals.get(k.kind) ?? { ms: 0, count: 0 }) }));
  const stepMs = rows.reduce((a, r) => a + r.ms, 0);
  return { wallMs: last - first, stepMs, scenarios: attempts.size, rows, starts: warm };
}

function main() {
  const [file, flag] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node scripts/time-breakdown.mjs reports/cucumber.ndjson [--json]');
    process.exit(2);
  }
  const messages = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const b = breakdown(messages);
  if (flag === '--json') {
    console.log(JSON.stringify(b, null, 2));
    return;
  }
  const s = (ms) => `${(ms / 1000).toFixed(1)} s`;
  console.log(`wall ${s(b.wallMs)}, ${b.scenarios} scenario attempts, step time ${s(b.stepMs)} (both workers)`);
  for (const r of b.rows) if (r.count > 0) console.log(`  ${r.kind.padEnd(64)} ${s(r.ms).padStart(9)}  ${((100 * r.ms) / b.stepMs).toFixed(1).padStart(5)} %  (${r.count})`);
  console.log(`  VM starts through vman: ${b.starts.boots} cold (${s(b.starts.bootMs)}), ${b.starts.resumes} clones (${s(b.starts.resumeMs)})`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
