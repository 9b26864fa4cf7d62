/**
 * Burrow command line: GOST-compatible `-L`/`-F`/`-C` flags.
 * `deno run -A --unstable-net main.ts -L :8080`
 * @module
 */
import { runCli } from "./src/cli.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
