/**
 * YAML behind one small module: the design asked for `jsr:@std/yaml`, which is unreachable from
 * our build machines, so `npm:yaml` stands in. Switching back is a change to this file only.
 * @module
 */
import { parse as parseYamlText, stringify } from "yaml";

/** Parses YAML text; errors carry the line and column. */
export function parseYaml(text: string): unknown {
  return parseYamlText(text);
}

/** Formats a value as YAML. */
export function toYaml(value: unknown): string {
  return stringify(value);
}
