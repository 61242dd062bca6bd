// The tag index of the living documentation: every tag, its scenarios and how
// they went in this run. A plain page (inline CSS, no script) so it opens from
// a file and reads well printed; the Cucumber page is one click away, filtered
// by the tag.
import { worseStatus } from './statuses.mjs';

const COLUMNS = [
  ['passed', (s) => s === 'PASSED'], ['failed', (s) => s === 'FAILED'], ['skipped', (s) => s === 'SKIPPED'],
  ['undefined', (s) => s === 'UNDEFINED'], ['pending, ambiguous or unknown', (s) => ['PENDING', 'AMBIGUOUS', 'UNKNOWN', 'NOT FINISHED'].includes(s)],
  ['not run', (s) => s === 'NOT RUN'],
];
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const anchor = (tag) => `tag-${tag.replace(/^@/, '').replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.codePointAt(0).toString(16)}`)}`;

/**
 * One row per execution of a scenario (its last attempt), and one for each scenario the run did not execute.
 * A scenario's status is the worst status of its last attempt's steps.
 * @param {Record<string, any>[]} messages a (merged) Cucumber message stream
 */
export function scenarioRows(messages) {
  const features = new Map();
  const pickles = [];
  const casesOfPickle = new Map();
  const attempts = new Map(); // testCaseId -> [{ started, finished, worst }]
  const byStarted = new Map();
  for (const m of messages) {
    if (m.gherkinDocument) features.set(m.gherkinDocument.uri, m.gherkinDocument.feature?.name ?? '');
    else if (m.pickle) pickles.push(m.pickle);
    else if (m.testCase) casesOfPickle.set(m.testCase.pickleId, [...(casesOfPickle.get(m.testCase.pickleId) ?? []), m.testCase.id]);
    else if (m.testCaseStarted) {
      const a = { started: m.testCaseStarted, finished: undefined, worst: 'UNKNOWN' };
      byStarted.set(m.testCaseStarted.id, a);
      attempts.set(m.testCaseStarted.testCaseId, [...(attempts.get(m.testCaseStarted.testCaseId) ?? []), a]);
    } else if (m.testStepFinished) {
      const a = byStarted.get(m.testStepFinished.testCaseStartedId);
      const s = m.testStepFinished.testStepResult.status;
      if (a) a.worst = worseStatus(a.worst, s);
    } else if (m.testCaseFinished) {
      const a = byStarted.get(m.testCaseFinished.testCaseStartedId);
      if (a) a.finished = m.testCaseFinished;
    }
  }
  const rows = [];
  for (const p of pickles) {
    const base = {
      name: p.name, uri: p.uri, line: p.location?.line, feature: features.get(p.uri) ?? p.uri,
      tags: [...new Set(p.tags.map((t) => t.name))],
    };
    const cases = casesOfPickle.get(p.id) ?? [];
    if (cases.length === 0) rows.push({ ...base, status: 'NOT RUN', attempts: 0, worker: '' });
    for (const id of cases) {
      const tries = (attempts.get(id) ?? []).sort((a, b) => a.started.attempt - b.started.attempt);
      const last = tries.find((a) => a.finished && !a.finished.willBeRetried) ?? tries.at(-1);
      const status = !last ? 'NOT RUN' : last.finished ? last.worst : 'NOT FINISHED';
      rows.push({ ...base, status, attempts: tries.length, worker: last?.started.workerId ?? '' });
    }
  }
  return rows.sort((a, b) => a.uri.localeCompare(b.uri) || (a.line ?? 0) - (b.line ?? 0));
}

function counts(rows) {
  return COLUMNS.map(([, test]) => rows.filter((r) => test(r.status)).length);
}

const statusClass = (s) => s.toLowerCase().replace(' ', '-');

/** @param {Record<string, any>[]} messages */
export function tagIndexPage(messages) {
  const rows = scenarioRows(messages);
  const tags = new Map();
  for (const r of rows) for (const t of r.tags) tags.set(t, [...(tags.get(t) ?? []), r]);
  const sorted = [...tags.keys()].sort((a, b) => a.localeCompare(b));
  const untagged = rows.filter((r) => r.tags.length === 0);
  const distinct = (list) => new Set(list.map((r) => `${r.uri}:${r.line}:${r.name}`)).size;
  const numbers = (list) => counts(list).map((n, i) => `<td class="n${n && i === 1 ? ' bad' : ''}">${n || ''}</td>`).join('');
  const section = (title, id, list) => `<section id="${id}"><h2>${esc(title)} <small>${distinct(list)} scenarios</small></h2>
${title.startsWith('@') ? `<p class="links"><a href="index.html?query=${encodeURIComponent(title)}">in the living documentation</a> · <a href="#top">tags</a></p>` : '<p class="links"><a href="#top">tags</a></p>'}
<table class="scenarios"><thead><tr><th>status</th><th>scenario</th><th>feature</th><th>file</th><th>worker</th></tr></thead><tbody>
${list.map((r) => `<tr><td><span class="st ${statusClass(r.status)}">${esc(r.status.toLowerCase())}</span>${r.attempts > 1 ? ` <small title="attempts">×${r.attempts}</small>` : ''}</td><td>${esc(r.name)}</td><td>${esc(r.feature)}</td><td><code>${esc(r.uri)}${r.line ? `:${r.line}` : ''}</code></td><td>${esc(r.worker)}</td></tr>`).join('\n')}
</tbody></table></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tags — vman living documentation</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1d232a; }
a { color: #0969da; } h1 { margin-bottom: .2rem; } .sub, small, .links { color: #5b6670; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1.8rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e5e9ed; text-align: left; vertical-align: top; }
th { font-weight: 600; background: #f6f8fa; } td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } td.bad { color: #c62828; font-weight: 600; }
.st { display: inline-block; min-width: 5.5em; padding: 0 .4em; border-radius: .3em; font-size: .85em; text-align: center; background: #e5e9ed; }
.st.passed { background: #d7f0d9; color: #1b5e20; } .st.failed { background: #fbd3d3; color: #8e1010; }
.st.skipped { background: #e3edf7; color: #0b4a8b; } .st.undefined, .st.pending, .st.ambiguous { background: #fff0c2; color: #6d4c00; }
.st.not-run { background: #fff; color: #5b6670; border: 1px dashed #aab4bd; }
section { margin-top: 1rem; } h2 { border-bottom: 2px solid #d8dee4; padding-bottom: .2rem; margin-bottom: .2rem; }
</style></head><body id="top">
<h1>Tags</h1>
<p class="sub">${distinct(rows)} scenarios, ${sorted.length} tags. Feature tags count for every scenario of the feature.
A scenario's status is the worst status of its steps in its last attempt. <a href="index.html">Living documentation</a></p>
<table class="index"><thead><tr><th>tag</th><th class="n">scenarios</th>${COLUMNS.map(([label]) => `<th class="n">${esc(label)}</th>`).join('')}</tr></thead><tbody>
${sorted.map((t) => `<tr><td><a href="#${anchor(t)}">${esc(t)}</a></td><td class="n">${distinct(tags.get(t))}</td>${numbers(tags.get(t))}</tr>`).join('\n')}
${untagged.length ? `<tr><td><a href="#untagged">no tag</a></td><td class="n">${distinct(untagged)}</td>${numbers(untagged)}</tr>` : ''}
<tr><th>all</th><th class="n">${distinct(rows)}</th>${numbers(rows).replaceAll('<td', '<th').replaceAll('</td>', '</th>')}</tr>
</tbody></table>
${sorted.map((t) => section(t, anchor(t), tags.get(t))).join('\n')}
${untagged.length ? section('No tag', 'untagged', untagged) : ''}
</body></html>
`;
}
