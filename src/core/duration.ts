/**
 * Go-style durations ("1h2m3.5s", "300ms"), as GOST's config accepts them.
 * @module
 */

const UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration string to milliseconds. A bare number means seconds (GOST's
 * `GetDuration`). Returns `undefined` for text that is neither.
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === "") return undefined;
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let sign = 1;
  let i = 0;
  if (s[0] === "-" || s[0] === "+") {
    sign = s[0] === "-" ? -1 : 1;
    i = 1;
  }
  let total = 0;
  let any = false;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]!]!;
    i = re.lastIndex;
    any = true;
  }
  return any ? sign * total : undefined;
}

/** Formats milliseconds as a Go duration string ("1m30s", "500ms"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  let rest = ms;
  let out = "";
  const h = Math.floor(rest / 3_600_000);
  if (h) out += `${h}h`, rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  if (m) out += `${m}m`, rest -= m * 60_000;
  if (rest) out += `${rest / 1000}s`;
  return out;
}
