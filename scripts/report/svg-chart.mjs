// Charts as inline SVG strings, for report pages that must open offline (no
// CDN, no script): horizontal bars with a marker line, and lines across runs.
// Every mark carries a <title>, which browsers show as a tooltip.

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
export const COLORS = ['#2f6db5', '#d9822b', '#3a9a5b', '#8e5cb8', '#7a7a7a'];

/** Text safe inside SVG/HTML, attribute values included. */
export function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** Milliseconds for a person: 3.42 s, 812 ms, 0.214 ms (as bench/lib/stats.ts prints them). */
export function fmtMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return 'n/a';
  if (ms >= 600_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 1) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(3)} ms`;
}

/** Axis labels in one unit for the whole axis, chosen by its largest tick: 0, 100 s, 200 s, 300 s. */
export function axisFormat(maxTick) {
  const trim = (x) => String(Number(x.toFixed(2)));
  const [div, unit] = maxTick >= 600_000 ? [60_000, 'min'] : maxTick > 1000 ? [1000, 's'] : maxTick >= 1 ? [1, 'ms'] : [0.001, 'µs'];
  return (ms) => (ms === 0 ? '0' : `${trim(ms / div)} ${unit}`);
}

/** Ticks on round numbers of the unit the axis will show (minutes for long runs). */
function axisTicks(max, count) {
  return max >= 600_000 ? niceTicks(max / 60_000, count).map((v) => v * 60_000) : niceTicks(max, count);
}

/** Round axis steps (1, 2, 5 × 10^n) from 0 to at least max. */
export function niceTicks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

// Label widths are estimated (no layout engine here): ~0.54 em per character.
const CHAR_EM = 0.54;
const textWidth = (text, size) => String(text).length * size * CHAR_EM;

// Cut in the middle, at spaces: outline scenarios differ at the end ("... answered with 404: look up the disk").
function truncate(text, maxPx, size) {
  const max = Math.round(maxPx / (size * CHAR_EM));
  if (text.length <= max) return text;
  const headLen = Math.ceil((max - 1) * 0.55);
  let head = text.slice(0, headLen);
  let tail = text.slice(text.length - (max - 1 - headLen));
  if (head.lastIndexOf(' ') > headLen * 0.6) head = head.slice(0, head.lastIndexOf(' '));
  if (tail.indexOf(' ') >= 0 && tail.indexOf(' ') < tail.length * 0.4) tail = tail.slice(tail.indexOf(' ') + 1);
  return `${head} … ${tail}`;
}

function svgOpen(width, height, label) {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(label)}" font-family='${FONT}' font-size="13">`;
}

function emptyChart(title, text, width) {
  return `${svgOpen(width, 56, title)}<text x="12" y="33" fill="#777" font-style="italic">${esc(text)}</text></svg>`;
}

/**
 * Horizontal bars, one row each, in the order given. A row: { label, value,
 * samples?, tooltip?, color? }; samples are drawn as ticks over the bar. The
 * marker (e.g. the median of all rows) is a dashed vertical line.
 */
export function barChart({ title, rows, marker, format = fmtMs, width = 960, emptyText = 'no measurements' }) {
  if (!rows || rows.length === 0) return emptyChart(title, emptyText, width);
  const size = 13;
  const rowH = 24;
  const top = marker ? 34 : 14;
  const labelW = Math.min(Math.max(...rows.map((r) => textWidth(r.label, size))) + 16, width * 0.55);
  const valueW = 80;
  const x0 = labelW;
  const plotW = width - labelW - valueW;
  const max = Math.max(...rows.flatMap((r) => [r.value, ...(r.samples ?? [])]), marker?.value ?? 0);
  const ticks = axisTicks(max);
  const scaleMax = ticks.at(-1) || 1;
  const tickFormat = axisFormat(scaleMax);
  const x = (v) => x0 + (Math.max(0, v) / scaleMax) * plotW;
  const height = top + rows.length * rowH + 28;
  const parts = [svgOpen(width, height, title)];
  rows.forEach((_, i) => {
    if (i % 2) parts.push(`<rect x="0" y="${top + i * rowH}" width="${width}" height="${rowH}" fill="#f5f6f8"/>`);
  });
  for (const t of ticks) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${top - 4}" y2="${top + rows.length * rowH}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${x(t)}" y="${top + rows.length * rowH + 17}" text-anchor="middle" fill="#666" font-size="11">${esc(tickFormat(t))}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const tip = r.tooltip ?? `${r.label}: ${format(r.value)}`;
    const color = r.color ?? COLORS[0];
    parts.push(`<g><title>${esc(tip)}</title>`);
    parts.push(`<text x="${x0 - 8}" y="${y + rowH / 2 + 4}" text-anchor="end" fill="#222">${esc(truncate(r.label, labelW - 14, size))}</text>`);
    parts.push(`<rect x="${x0}" y="${y + 4}" width="${Math.max(1, x(r.value) - x0)}" height="${rowH - 8}" rx="2" fill="${color}" fill-opacity="0.85"/>`);
    for (const s of r.samples ?? []) {
      parts.push(`<line x1="${x(s)}" x2="${x(s)}" y1="${y + 2}" y2="${y + rowH - 2}" stroke="#1b1b1b" stroke-width="1.5" stroke-opacity="0.7"/>`);
    }
    const end = Math.max(r.value, ...(r.samples ?? []));
    parts.push(`<text x="${x(end) + 6}" y="${y + rowH / 2 + 4}" fill="#333" font-size="12">${esc(format(r.value))}</text>`);
    parts.push('</g>');
  });
  if (marker && Number.isFinite(marker.value)) {
    const mx = x(marker.value);
    parts.push(`<g><title>${esc(`${marker.label}: ${format(marker.value)}`)}</title>`);
    parts.push(`<line x1="${mx}" x2="${mx}" y1="${top - 10}" y2="${top + rows.length * rowH}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5 3"/>`);
    const anchor = mx > width - 160 ? 'end' : 'start';
    parts.push(`<text x="${mx + (anchor === 'end' ? -4 : 4)}" y="${top - 14}" text-anchor="${anchor}" fill="#c0392b" font-size="12">${esc(`${marker.label} ${format(marker.value)}`)}</text></g>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/**
 * Lines across runs. series: [{ name, points: [{ x, y, tooltip? }] }] with x a
 * run index into xLabels; a point with y null is a run without that number
 * (the line breaks there). One run is drawn as dots only.
 */
export function lineChart({ title, series, xLabels, format = fmtMs, width = 960, height = 260, emptyText = 'no runs yet' }) {
  const points = series.flatMap((s) => s.points.filter((p) => typeof p.y === 'number' && Number.isFinite(p.y)));
  if (points.length === 0) return emptyChart(title, emptyText, width);
  const left = 70;
  const right = 60; // room for the newest run's date and values
  const top = 30;
  const bottom = 40;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const n = Math.max(1, xLabels.length);
  const ticks = axisTicks(Math.max(...points.map((p) => p.y)), 4);
  const scaleMax = ticks.at(-1) || 1;
  const tickFormat = axisFormat(scaleMax);
  const x = (i) => (n === 1 ? left + plotW / 2 : left + (i / (n - 1)) * plotW);
  const y = (v) => top + plotH - (v / scaleMax) * plotH;
  const parts = [svgOpen(width, height, title)];
  for (const t of ticks) {
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y(t)}" y2="${y(t)}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${left - 8}" y="${y(t) + 4}" text-anchor="end" fill="#666" font-size="11">${esc(tickFormat(t))}</text>`);
  }
  // At most ~10 date labels, always the first and the last run.
  const every = Math.max(1, Math.ceil(n / 10));
  xLabels.forEach((label, i) => {
    if (i % every !== 0 && i !== n - 1) return;
    if (i !== n - 1 && n - 1 - i < every) return;
    parts.push(`<text x="${x(i)}" y="${height - bottom + 18}" text-anchor="middle" fill="#666" font-size="11">${esc(label)}</text>`);
  });
  parts.push(`<text x="${left + plotW / 2}" y="${height - 6}" text-anchor="middle" fill="#888" font-size="11">run (oldest left, newest right; dates UTC)</text>`);
  let legendX = left;
  series.forEach((s, si) => {
    const color = s.color ?? COLORS[si % COLORS.length];
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<line x1="${legendX}" x2="${legendX + 22}" y1="14" y2="14" stroke="${color}" stroke-width="2.5"${dash}/>`);
    parts.push(`<text x="${legendX + 28}" y="18" fill="#333" font-size="12">${esc(s.name)}</text>`);
    legendX += 40 + textWidth(s.name, 12) + 16;
    // Consecutive runs with a number are joined; a gap breaks the line.
    let run = [];
    const flush = () => {
      if (run.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2"${dash} points="${run.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ')}"/>`);
      run = [];
    };
    for (const p of s.points) {
      if (typeof p.y === 'number' && Number.isFinite(p.y)) run.push(p);
      else flush();
    }
    flush();
    for (const p of s.points) {
      if (typeof p.y !== 'number' || !Number.isFinite(p.y)) continue;
      const tip = p.tooltip ?? `${s.name}, ${xLabels[p.x] ?? `run ${p.x + 1}`}: ${format(p.y)}`;
      parts.push(`<circle cx="${x(p.x).toFixed(1)}" cy="${y(p.y).toFixed(1)}" r="4" fill="${color}"><title>${esc(tip)}</title></circle>`);
    }
    // The newest value is written out: a screenshot or a printout has no tooltips.
    const last = s.points.filter((p) => typeof p.y === 'number' && Number.isFinite(p.y)).at(-1);
    if (last) parts.push(`<text x="${(x(last.x) + 7).toFixed(1)}" y="${(y(last.y) - 6).toFixed(1)}" fill="${color}" font-size="12">${esc(format(last.y))}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}

const CSS = `
body { font-family: ${FONT}; color: #222; background: #f6f7f9; margin: 0; line-height: 1.45; }
main { max-width: 1010px; margin: 0 auto; padding: 20px 24px 48px; }
header p { color: #555; margin: 4px 0; }
nav a { margin-right: 14px; }
h1 { font-size: 1.6em; margin: 0.6em 0 0.2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.02em; margin: 1.2em 0 0.3em; }
section.card { background: #fff; border: 1px solid #e2e4e8; border-radius: 6px; padding: 10px 14px 14px; margin: 12px 0; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.93em; background: #fff; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
th { background: #f0f2f5; font-weight: 600; }
.note { color: #666; font-size: 0.9em; }
.good { color: #2e7d32; } .bad { color: #c62828; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; }
dl.facts dt { color: #666; } dl.facts dd { margin: 0; }
svg.chart { display: block; max-width: 100%; height: auto; }
a { color: #2f6db5; }
`;

/** A whole page around a body, with the shared light style and no outside resources. */
export function htmlPage({ title, body }) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><main>
${body}
</main></body></html>
`;
}
