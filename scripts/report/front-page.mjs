// The site's front page: how the whole run went, in one screen, and where to
// read more. Self-contained (inline CSS, no script): it must open from a file.

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

const PAGES = [
  { href: 'living-doc/index.html', title: 'Living documentation', text: 'Every feature and scenario as product and QA wrote them, with each step\'s result and the attachments: serial consoles, QMP exchanges, timings.' },
  { href: 'living-doc/tags.html', title: 'Tags', text: 'Every tag, its scenarios and how they went.' },
  { href: 'allure/index.html', title: 'Allure report', text: 'Status by feature and tag, durations, the timeline of the parallel workers, failures grouped by cause, trends across runs.' },
  { href: 'numbers.html', title: 'Boot, hot-plug and stop times', text: 'Per scenario in this run, and their medians across runs.' },
  { href: 'bench.html', title: 'Benchmarks', text: 'npm run bench: vman against a baseline measured in the same run.' },
];

/**
 * @param {{ summary: ReturnType<typeof import('./run-summary.mjs').summarizeRun>, unit?: { passed: number, failed: number },
 *   coverage?: { lines: number, branches: number, gate: { lines: number, branches: number } },
 *   commit?: string, runUrl?: string,
 *   files: { label: string, href: string }[] }} run
 */
export function frontPage({ summary, unit, coverage, commit, runUrl, files }) {
  const t = summary.totals;
  const failedCount = t.FAILED + t.UNDEFINED + t.AMBIGUOUS + t.PENDING + t.UNKNOWN;
  const ok = summary.success === true && failedCount === 0 && !(unit?.failed);
  const minutes = summary.startedAt && summary.finishedAt ? ((summary.finishedAt - summary.startedAt) / 60000).toFixed(1) : '?';
  const when = summary.startedAt ? new Date(summary.startedAt).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : 'unknown time';
  const shards = Object.entries(summary.shards);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>vman acceptance — ${ok ? 'passed' : 'failed'}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1d232a; }
h1 { margin: 0 0 .2rem; } .sub { color: #5b6670; margin: 0 0 1.5rem; }
.verdict { display: inline-block; padding: .2rem .8rem; border-radius: 1rem; color: #fff; font-weight: 600; background: ${ok ? '#2e7d32' : '#c62828'}; }
.totals { display: flex; gap: 1rem; margin: 1rem 0 1.5rem; flex-wrap: wrap; }
.totals div { border: 1px solid #d8dee4; border-radius: .5rem; padding: .6rem 1rem; min-width: 7rem; }
.totals b { display: block; font-size: 1.6rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap: .8rem; }
.cards a { display: block; border: 1px solid #d8dee4; border-radius: .5rem; padding: .8rem 1rem; color: inherit; text-decoration: none; }
.cards a:hover { border-color: #0969da; } .cards b { color: #0969da; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; } td, th { padding: .25rem .8rem; border-bottom: 1px solid #e5e9ed; text-align: left; }
.failed { color: #c62828; }
</style></head><body>
<h1>vman acceptance <span class="verdict">${ok ? 'passed' : 'failed'}</span></h1>
<p class="sub">${esc(when)} · ${minutes} min from first to last scenario${commit ? ` · commit <code>${esc(commit.slice(0, 12))}</code>` : ''}${runUrl ? ` · <a href="${esc(runUrl)}">CI run</a>` : ''}</p>
<div class="totals">
<div><b>${t.PASSED}</b>scenarios passed</div><div class="${failedCount ? 'failed' : ''}"><b>${failedCount}</b>scenarios failed</div><div><b>${t.SKIPPED}</b>scenarios skipped</div>
${unit ? `<div class="${unit.failed ? 'failed' : ''}"><b>${unit.passed}/${unit.passed + unit.failed}</b>unit tests passed</div>` : ''}
</div>
${summary.failed.length ? `<h2 class="failed">Failed</h2><ul>${summary.failed.map((f) => `<li>${esc(f.name)} <small>(${esc(f.uri)}, ${esc(f.status.toLowerCase())})</small></li>`).join('')}</ul>` : ''}
<div class="cards">${[...PAGES, ...(coverage ? [coverageCard(coverage)] : [])].map((p) => `<a href="${p.href}"><b>${esc(p.title)}</b><br>${esc(p.text)}</a>`).join('\n')}</div>
${shards.length > 1 || (shards[0] && shards[0][0] !== 'local') ? `<h2>Shards</h2><table><tr><th>shard</th><th>passed</th><th>failed</th><th>other</th></tr>
${shards.map(([name, s]) => `<tr><td>${esc(name)}</td><td>${s.passed}</td><td>${s.failed}</td><td>${s.other}</td></tr>`).join('\n')}</table>` : ''}
${files.length ? `<h2>Files</h2><ul>${files.map((f) => `<li><a href="${esc(f.href)}">${esc(f.label)}</a></li>`).join('')}</ul>` : ''}
</body></html>
`;
}

/** The coverage card: the totals against the gate of .c8rc.json. */
function coverageCard(c) {
  const verdict = c.lines >= c.gate.lines && c.branches >= c.gate.branches ? 'within the gate' : 'under the gate';
  return {
    href: 'coverage/index.html', title: 'Coverage of src/',
    text: `${c.lines} % of lines, ${c.branches} % of branches (gate ${c.gate.lines} % and ${c.gate.branches} %: ${verdict}), over the unit tests and the suite, every vman process counted.`,
  };
}
