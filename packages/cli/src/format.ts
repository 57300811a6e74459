/** Human output helpers: byte sizes, durations and aligned tables. */

/** `1536` → `1.5K`, `3e9` → `2.8G`. */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  const units = ['B', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value}B` : `${value.toFixed(value < 10 ? 1 : 0)}${units[unit]}`;
}

/** `450` → `0.5s`, `null` → `never`. */
export function formatAge(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.round(ms / 60_000)}m`;
}

/** Renders rows as columns separated by two spaces, header first. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Prints one JSON document with `--json`, else the human rendering. */
export function printResult(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(`${json === true ? JSON.stringify(value, null, 2) : human()}\n`);
}
