/**
 * One JSON object per line on stderr, GOST's field names (docs/gost-config.md §5):
 * `time`, `level`, `msg`, then context fields (`kind`, `service`, `remote`, `local`, ...).
 * @module
 */

/** Log levels, least to most severe. */
export type Level = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "none";
const RANK: Record<Level, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  warn: 3,
  error: 4,
  fatal: 5,
  none: 9,
};

/** Context fields carried by a logger. */
export type Fields = Record<string, unknown>;

/** Where lines go: defaults to stderr. */
export type Sink = (line: string) => void;

const encoder = new TextEncoder();
const stderrSink: Sink = (line) => {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch { /* stderr gone: nothing to do */ }
};

function timestamp(d = new Date()): string {
  const off = -d.getTimezoneOffset();
  const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, "0");
  const local = new Date(d.getTime() + off * 60_000);
  const base = local.toISOString().slice(0, 23);
  const zone = off === 0
    ? "Z"
    : `${off > 0 ? "+" : "-"}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`;
  return base + zone;
}

/** A leveled logger with fields; `with()` derives a child carrying more fields. */
export class Logger {
  /** Fields added to every line this logger writes. */
  readonly fields: Fields;
  readonly #sink: Sink;
  /** Shared by a logger and every logger derived from it, so a reload can change the level. */
  readonly #level: { level: Level };

  /** A logger at `level` with `fields`, writing JSON lines to `sink` (default stderr). */
  constructor(
    level: Level = "info",
    fields: Fields = {},
    sink: Sink = stderrSink,
    shared?: { level: Level },
  ) {
    this.#level = shared ?? { level };
    this.fields = fields;
    this.#sink = sink;
  }

  /** The level of this logger and of every logger derived from it with `with`. */
  get level(): Level {
    return this.#level.level;
  }

  /** Changes the level of this logger's whole family (a config reload). */
  setLevel(level: Level): void {
    this.#level.level = level;
  }

  /** A child logger adding `fields` to every line (same level and sink). */
  with(fields: Fields): Logger {
    return new Logger(this.level, { ...this.fields, ...fields }, this.#sink, this.#level);
  }

  /** Whether a line at `level` would be written. */
  enabled(level: Level): boolean {
    return RANK[level] >= RANK[this.#level.level];
  }

  /** Writes one JSON line at `level` (when enabled). */
  log(level: Level, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const rec: Fields = { time: timestamp(), level, msg, ...this.fields, ...fields };
    this.#sink(JSON.stringify(rec, (_k, v) => v instanceof Error ? v.message : v));
  }

  /** Logs at `trace`. */
  trace(msg: string, fields?: Fields): void {
    this.log("trace", msg, fields);
  }
  /** Logs at `debug`. */
  debug(msg: string, fields?: Fields): void {
    this.log("debug", msg, fields);
  }
  /** Logs at `info`. */
  info(msg: string, fields?: Fields): void {
    this.log("info", msg, fields);
  }
  /** Logs at `warn`. */
  warn(msg: string, fields?: Fields): void {
    this.log("warn", msg, fields);
  }
  /** Logs at `error`. */
  error(msg: string, fields?: Fields): void {
    this.log("error", msg, fields);
  }
}

/** Formats a record as GOST's text format: `time level msg key=value ...`. */
export function textLine(rec: Fields): string {
  const { time, level, msg, ...rest } = rec;
  const kv = Object.entries(rest).map(([k, v]) => {
    const s = typeof v === "string" ? v : JSON.stringify(v);
    return `${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
  });
  return [time, level, JSON.stringify(msg), ...kv].join(" ");
}

/**
 * A sink for GOST's `log.output` (`stderr` default, `stdout`, `none`/`null`, or a file path,
 * appended) and `log.format` (`json` default, `text`).
 */
export function sinkFor(output = "stderr", format = "json"): Sink {
  let write: (line: string) => void;
  if (output === "none" || output === "null") return () => {};
  if (output === "stdout") {
    write = (line) => {
      try {
        Deno.stdout.writeSync(encoder.encode(line + "\n"));
      } catch { /* stdout gone */ }
    };
  } else if (output === "stderr" || output === "") {
    write = stderrSink;
  } else {
    const file = Deno.openSync(output, { append: true, create: true });
    write = (line) => {
      try {
        file.writeSync(encoder.encode(line + "\n"));
      } catch { /* disk full: drop the line rather than the process */ }
    };
  }
  if (format !== "text") return write;
  return (line) => write(textLine(JSON.parse(line)));
}

/** A logger that drops everything (library default, tests). */
export const silentLogger: Logger = new Logger("none");

/** One recent warning or error, as the dashboard shows it. */
export interface LogEntry {
  time: string;
  level: string;
  msg: string;
  service?: string;
}

/** The last warnings and errors a logger wrote (bounded), for the dashboard. */
export class RecentLog {
  readonly #max: number;
  readonly #entries: LogEntry[] = [];

  constructor(max = 50) {
    this.#max = max;
  }

  /** A sink that records warn/error lines and passes every line on to `inner`. */
  tee(inner: Sink): Sink {
    return (line) => {
      // Parse only the lines worth keeping (the string test is cheap; info lines are many).
      if (line.includes('"level":"error"') || line.includes('"level":"warn"')) {
        try {
          const r = JSON.parse(line) as Fields;
          this.#entries.push({
            time: String(r.time),
            level: String(r.level),
            msg: String(r.msg),
            ...(r.service !== undefined ? { service: String(r.service) } : {}),
          });
          if (this.#entries.length > this.#max) this.#entries.shift();
        } catch { /* not ours to fix */ }
      }
      inner(line);
    };
  }

  /** Oldest first. */
  get entries(): readonly LogEntry[] {
    return this.#entries;
  }
}
