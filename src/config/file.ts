/**
 * Config sources for `-C`: a file path (format from the extension), `-` for stdin (JSON if it
 * starts with `{`), an inline JSON object, or an http(s) URL (docs/gost-config.md §1.2).
 * @module
 */
import { ConfigError } from "../core/errors.ts";
import { type Config, normalizeConfig, type NormalizeOptions } from "./model.ts";
import { parseYaml, toYaml } from "./yaml.ts";

function parseText(text: string, json: boolean, where: string): unknown {
  try {
    return json ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(
      where,
      `cannot parse ${json ? "JSON" : "YAML"}: ${
        e instanceof Error ? e.message.split("\n")[0] : e
      }`,
    );
  }
}

/** Reads and validates one `-C` source. */
export async function loadConfigSource(
  src: string,
  opts: NormalizeOptions = {},
): Promise<Config> {
  const s = src.trim();
  let raw: unknown;
  let where = src;
  if (s.startsWith("{") && s.endsWith("}")) {
    where = "inline JSON";
    raw = parseText(s, true, where);
  } else if (s === "-") {
    where = "stdin";
    const text = await new Response(Deno.stdin.readable).text();
    raw = parseText(text, text.trimStart().startsWith("{"), where);
  } else if (/^https?:\/\//.test(s)) {
    const res = await fetch(s, { signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new ConfigError(s, `HTTP ${res.status}`);
    const text = await res.text();
    if (text.length > 10 << 20) throw new ConfigError(s, "config larger than 10 MiB");
    const json = (res.headers.get("content-type") ?? "").includes("json") || s.endsWith(".json");
    raw = parseText(text, json, where);
  } else {
    let text: string;
    try {
      text = await Deno.readTextFile(s);
    } catch (e) {
      throw new ConfigError(s, `cannot read config file: ${e instanceof Error ? e.message : e}`);
    }
    raw = parseText(text, s.toLowerCase().endsWith(".json"), where);
  }
  try {
    const diag = opts.diagnostics;
    return normalizeConfig(raw, {
      ...opts,
      ...(diag ? { diagnostics: { ...diag, warn: (p, m) => diag.warn(`${where}: ${p}`, m) } } : {}),
    });
  } catch (e) {
    if (e instanceof ConfigError) {
      throw new ConfigError(`${where}: ${e.path}`, e.message.slice(e.path.length + 2));
    }
    throw e;
  }
}

/**
 * Parses and validates config text: GOST's YAML, or JSON (YAML reads JSON too).
 *
 * @example
 * ```ts
 * import { parseConfig } from "./file.ts";
 * const cfg = parseConfig("services:\n- name: s\n  addr: 127.0.0.1:0\n  handler: {type: socks5}\n  listener: {type: tcp}\n");
 * console.log(cfg.services![0]!.handler.type); // "socks5"
 * ```
 */
export function parseConfig(text: string, opts: NormalizeOptions = {}): Config {
  return normalizeConfig(parseText(text, false, "config text"), opts);
}

/** Formats a config for `-O yaml|json`. */
export function formatConfig(cfg: Config, format: "yaml" | "json"): string {
  return format === "json" ? JSON.stringify(cfg, null, 2) + "\n" : toYaml(cfg);
}
