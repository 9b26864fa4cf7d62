/**
 * YAML behind one small module: the design asked for `jsr:@std/yaml`, which is unreachable from
 * our build machines, so `npm:yaml` stands in. Switching back is a change to this file only.
 * @module
 */
import { parseDocument, stringify } from "yaml";

/** Strict YAML: a warning (an unknown `!tag`, ...) is an error, not a line on stderr. */
function parseYamlText(text: string): unknown {
  const doc = parseDocument(text, { logLevel: "silent" });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw problem;
  return doc.toJS();
}

/** Expands tabs in leading whitespace to 4-column stops (Markdown's tab width). */
function expandIndentTabs(text: string): string {
  return text.replace(/^[ \t]+/gm, (ws) => {
    let col = 0;
    for (const ch of ws) col = ch === "\t" ? col + 4 - (col % 4) : col + 1;
    return " ".repeat(col);
  });
}

/** GOST's docs write `addr: :` (any port); quote such bare-colon values. */
function quoteBareColons(text: string): string {
  return text.replace(/^(\s*(?:- )?[\w.-]+):[ \t]+(:[0-9]*)[ \t]*$/gm, '$1: "$2"');
}

/**
 * Parses YAML text; errors carry the line and column. Two slips common in GOST's own docs are
 * forgiven when strict parsing fails: tabs in indentation (read with 4-column stops, as the
 * rendered page shows them) and unquoted `addr: :`.
 */
export function parseYaml(text: string): unknown {
  try {
    return parseYamlText(text);
  } catch (e) {
    const fixed = quoteBareColons(expandIndentTabs(text));
    if (fixed === text) throw e;
    try {
      return parseYamlText(fixed);
    } catch {
      throw e;
    }
  }
}

/** Formats a value as YAML. */
export function toYaml(value: unknown): string {
  return stringify(value);
}
