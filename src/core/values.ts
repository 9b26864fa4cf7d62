/**
 * How a config value of any source (YAML, JSON, a CLI query string) becomes a typed value: one
 * set of rules for the config model's fields and for metadata, matching Go's weak typing in GOST
 * (strconv.ParseBool words, numbers as seconds for durations). Each returns `undefined` for an
 * absent value and throws a {@link ConfigError} naming `path` for a malformed one.
 * @module
 */
import { parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";

/** What a value is, for error messages. */
export function kindOf(v: unknown): string {
  return Array.isArray(v) ? "a list" : v === null ? "null" : `a ${typeof v}`;
}

const TRUE = new Set(["1", "t", "true", "yes", "on"]);
const FALSE = new Set(["0", "f", "false", "no", "off", ""]);

export function toBool(v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  const s = String(v).trim().toLowerCase();
  if (TRUE.has(s)) return true;
  if (FALSE.has(s)) return false;
  if (/^-?\d+$/.test(s)) return Number(s) !== 0;
  throw new ConfigError(path, `expected true or false, got ${JSON.stringify(v)}`);
}

export function toInt(v: unknown, path: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "boolean") return v ? 1 : 0;
  const n = typeof v === "number" ? v : typeof v === "string" ? Number(v.trim()) : NaN;
  if (!Number.isInteger(n)) {
    throw new ConfigError(path, `expected an integer, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function toStr(v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new ConfigError(path, `expected a string, got ${kindOf(v)}`);
}

/** Milliseconds from Go duration text or a number of seconds; never negative. */
export function toDurationMs(v: unknown, path: string): number | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  const ms = typeof v === "number" ? v * 1000 : parseDuration(String(v));
  if (ms === undefined || ms < 0 || !Number.isFinite(ms)) {
    throw new ConfigError(path, `expected a duration such as "30s", got ${JSON.stringify(v)}`);
  }
  return ms;
}
