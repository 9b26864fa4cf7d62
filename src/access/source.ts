/**
 * The lines behind an admission, bypass, hosts, limiter or auther: inline items plus an optional
 * file, re-read every `reload` period (at least 1 s, as GOST). The first load happens before the
 * service starts and a missing file fails the start; a failed reload keeps the last good set and
 * logs why (GOST keeps an empty set for some kinds; an emptied whitelist would lock everyone out
 * and an emptied blacklist would open everything, so Burrow keeps the old one).
 * @module
 */
import { ConfigError, errorText } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";

export interface SourceOptions {
  /** Inline items, used as they are. */
  items?: readonly string[];
  /** A file of one item a line. */
  file?: string;
  /** Re-read period in ms (0: never). */
  reloadMs?: number;
  /** `#` starts a comment anywhere (`anywhere`) or only at the start of a line (`line`). */
  comments?: "anywhere" | "line";
  /** Field path for errors, e.g. `bypasses[0]`. */
  path: string;
  log: Logger;
}

/** Reads a file's items: trimmed lines, blank lines and comments dropped. */
export function fileItems(text: string, comments: "anywhere" | "line" = "anywhere"): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.replace(/\t/g, " ");
    if (comments === "anywhere") {
      const i = line.indexOf("#");
      if (i >= 0) line = line.slice(0, i);
    } else if (line.trimStart().startsWith("#")) continue;
    line = line.trim();
    if (line !== "") out.push(line);
  }
  return out;
}

/** Inline items + file items, re-read on a timer; `apply` gets each new set. */
export class LineSource {
  #timer?: ReturnType<typeof setInterval>;
  #closed = false;
  #last = "";
  #busy = false;

  private constructor(
    readonly opts: SourceOptions,
    readonly apply: (items: string[]) => void | Promise<void>,
  ) {}

  static async start(
    opts: SourceOptions,
    apply: (items: string[]) => void | Promise<void>,
  ): Promise<LineSource> {
    const s = new LineSource(opts, apply);
    const items = await s.#read(true);
    s.#last = items.join("\n");
    await apply(items);
    const period = opts.reloadMs ?? 0;
    if (period > 0 && opts.file) {
      const t = setInterval(() => void s.reload(), Math.max(period, 1000));
      Deno.unrefTimer(t as unknown as number);
      s.#timer = t;
    }
    return s;
  }

  async #read(first: boolean): Promise<string[]> {
    const items = [...(this.opts.items ?? [])];
    if (this.opts.file) {
      try {
        // A loop, not `push(...)`: a blocklist of ~120k lines overflows the stack as spread
        // arguments, and that failed the start.
        for (const item of fileItems(await Deno.readTextFile(this.opts.file), this.opts.comments)) {
          items.push(item);
        }
      } catch (e) {
        const msg = `cannot read ${this.opts.file}: ${errorText(e)}`;
        if (first) throw new ConfigError(`${this.opts.path}.file.path`, msg);
        throw new Error(msg);
      }
    }
    return items;
  }

  /** Re-reads now (the timer calls this); errors keep the previous set. */
  async reload(): Promise<void> {
    if (this.#closed) return;
    try {
      const items = await this.#read(false);
      if (!this.#closed) await this.apply(items);
    } catch (e) {
      this.opts.log.warn(
        `${this.opts.path}: reload failed, keeping the previous set: ${errorText(e)}`,
      );
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}
