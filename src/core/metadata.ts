/**
 * GOST metadata: a case-insensitive string-keyed map with typed getters that accept several
 * alias keys. Parse it once into a typed options object at init; hot paths never look keys up.
 * @module
 */
import { toBool, toDurationMs, toInt } from "./values.ts";

/** Raw metadata as it comes from the CLI (strings) or a config file (any JSON value). */
export type MetadataRecord = Record<string, unknown>;

/**
 * Which keys components asked for (lower-case, with any `withPrefix` prefix). Shared by the
 * metadata maps of one service or one chain node, so the runtime can tell after start-up which
 * given keys nothing read: those are refused or warned about, never silently ignored.
 */
export class KeyUse {
  readonly asked: Set<string>;

  /** With `also`, every key asked here is recorded there too (a listener inside its service). */
  constructor(also?: KeyUse) {
    this.asked = also ? new TeeSet(also.asked) : new Set();
  }
}

/**
 * A set that also adds to another one and answers `has` for both: its own entries are what its
 * user asked for, `has` is what the whole group asked for.
 */
class TeeSet extends Set<string> {
  constructor(readonly also: Set<string>) {
    super();
  }
  override add(k: string): this {
    this.also.add(k);
    return super.add(k);
  }
  override has(k: string): boolean {
    return super.has(k) || this.also.has(k);
  }
}

/** Case-insensitive metadata with GOST's value typing. */
export class Metadata {
  readonly #map = new Map<string, unknown>();
  /** Field path for error messages, e.g. `services[0].listener.metadata`. */
  readonly path: string;
  /**
   * Shared record of the keys asked for.
   * @internal
   */
  readonly use: KeyUse;
  readonly #prefix: string;

  /** Metadata over `record`; `path` prefixes error messages. */
  constructor(record: MetadataRecord = {}, path = "metadata", use = new KeyUse(), prefix = "") {
    this.path = path;
    this.use = use;
    this.#prefix = prefix;
    for (const [k, v] of Object.entries(record)) this.#map.set(k.toLowerCase(), v);
  }

  /** The raw value under the first present alias (GOST: the last present alias wins). */
  get(...keys: string[]): unknown {
    let out: unknown;
    for (const k of keys) {
      const lk = k.toLowerCase();
      this.use.asked.add(this.#prefix + lk);
      const v = this.#map.get(lk);
      if (v !== undefined) out = v;
    }
    return out;
  }

  /** The field path of whichever of `keys` is present (last one wins), for error messages. */
  #at(keys: string[]): string {
    let out = keys[0] ?? "";
    for (const k of keys) if (this.#map.has(k.toLowerCase())) out = k;
    return `${this.path}.${out}`;
  }

  /** Whether any of `keys` is present. */
  has(...keys: string[]): boolean {
    return this.get(...keys) !== undefined;
  }

  /** The value as text, or `def`. */
  string(keys: string | string[], def = ""): string {
    const ks = typeof keys === "string" ? [keys] : keys;
    const v = this.get(...ks);
    if (v === undefined || v === null) return def;
    return typeof v === "string" ? v : String(v);
  }

  /** The value as a boolean (GOST's `true`/`1`/`yes`...), or `def`; a non-boolean is a ConfigError. */
  bool(keys: string | string[], def = false): boolean {
    const ks = typeof keys === "string" ? [keys] : keys;
    return toBool(this.get(...ks), this.#at(ks)) ?? def;
  }

  /** The value as an integer, or `def`; a non-number is a ConfigError. */
  int(keys: string | string[], def = 0): number {
    const ks = typeof keys === "string" ? [keys] : keys;
    return toInt(this.get(...ks), this.#at(ks)) ?? def;
  }

  /** A duration in milliseconds: Go duration text, or a number of seconds. */
  duration(keys: string | string[], defMs = 0): number {
    const ks = typeof keys === "string" ? [keys] : keys;
    return toDurationMs(this.get(...ks), this.#at(ks)) ?? defMs;
  }

  /** A list: a YAML array, or comma-separated text. */
  strings(keys: string | string[]): string[] {
    const ks = typeof keys === "string" ? [keys] : keys;
    const v = this.get(...ks);
    if (v === undefined || v === null || v === "") return [];
    if (Array.isArray(v)) return v.map(String);
    return String(v).split(",").map((s) => s.trim()).filter((s) => s !== "");
  }

  /** A string map: a YAML mapping, or `k1:v1,k2:v2` text. */
  map(keys: string | string[]): Record<string, string> {
    const ks = typeof keys === "string" ? [keys] : keys;
    const v = this.get(...ks);
    if (v === undefined || v === null || v === "") return {};
    if (typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as object).map(([k, x]) => [k, String(x)]));
    }
    const out: Record<string, string> = {};
    for (const part of String(v).split(",")) {
      const i = part.indexOf(":");
      if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
  }

  /** Keys with the given dotted prefix, prefix removed (e.g. "kcp." → {crypt: ...}). */
  withPrefix(prefix: string): Metadata {
    const p = prefix.toLowerCase();
    const out: MetadataRecord = {};
    for (const [k, v] of this.#map) if (k.startsWith(p)) out[k.slice(p.length)] = v;
    return new Metadata(
      out,
      `${this.path}.${prefix.replace(/\.$/, "")}`,
      this.use,
      this.#prefix + p,
    );
  }

  /** All entries, keys lower-cased. The caller takes them all, so they count as asked for. */
  entries(): [string, unknown][] {
    for (const k of this.#map.keys()) this.use.asked.add(this.#prefix + k);
    return [...this.#map];
  }

  /** Present keys (lower-case) that no component asked for. */
  unread(): string[] {
    return [...this.#map.keys()].filter((k) => !this.use.asked.has(this.#prefix + k));
  }
}
