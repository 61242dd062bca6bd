// Plain aligned tables and sizes for people; `--json` bypasses them for scripts.

export type Cell = string | number | boolean | null | undefined;

export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ');
  return [line(headers), ...text.map(line)].join('\n') + '\n';
}

/** Prints the API's JSON as it came (scripts) or the table (people). */
export function output(json: boolean, value: unknown, table: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : table());
}

/** Sizes for people: 812 B, 1.5 KiB, 312.4 MiB (1024-based, one decimal); nothing stays nothing. */
export function formatBytes(n: number): string;
export function formatBytes(n: number | null): string | null;
export function formatBytes(n: number | null): string | null {
  if (n === null) return null;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}
