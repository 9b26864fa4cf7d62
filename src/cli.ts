/**
 * The command-line program behind `main.ts`: flags → config → runtime, signals → clean exit.
 * @module
 */
import { asUsage, type CliArgs, parseArgs, UsageError } from "./config/cli.ts";
import { cliConfig } from "./builtins.ts";
import { formatConfig, loadConfigSource } from "./config/file.ts";
import { ACCESS_LISTS, type Config, mergeConfigs } from "./config/model.ts";
import { ConfigError, errorText } from "./core/errors.ts";
import { consoleDiagnostics } from "./config/keys.ts";
import { type Level, Logger, sinkFor } from "./core/log.ts";
import { Runtime } from "./runtime/runtime.ts";
import { VERSION } from "./version.ts";

const USAGE = `Usage: burrow [-L service]... [-F node]... [-C config]... [-D] [-O yaml|json] [-V]
  -L  service, e.g. -L :8080 (auto proxy), -L socks5://u:p@:1080, -L tcp://:2222/host:22
  -F  chain node (each -F is one hop), e.g. -F socks5://host:1080, -F forward+mtcp://srv:8443
  -C  config file (YAML or JSON; several allowed, merged), "-" for stdin
  -D  debug logging (-DD: trace)
  -O  print the normalised config as yaml or json and exit
  -V  print the version and exit
  --strict  unknown keys are errors, not warnings (also: strict: true in the config)`;

/** How long live conns get to finish after SIGINT/SIGTERM. */
const GRACE_MS = 3000;

function levelOf(cfg: Config, debug: boolean, trace: boolean): Level {
  if (trace) return "trace";
  if (debug) return "debug";
  const l = cfg.log?.level ?? Deno.env.get("GOST_LOGGER_LEVEL") ?? "info";
  return (l === "warning" ? "warn" : l) as Level;
}

/** Splits argv on `--` into independent groups. */
function splitGroups(argv: string[]): string[][] {
  const out: string[][] = [[]];
  for (const a of argv) {
    if (a === "--") out.push([]);
    else out[out.length - 1]!.push(a);
  }
  return out.filter((g, i) => i === 0 || g.length > 0);
}

/** The config of group `g`: services numbered after `offset`, its chain named `chain-g`. */
function groupConfig(a: CliArgs, g: number, offset: number): Config {
  const cfg = cliConfig(a.services, a.nodes);
  const chain = `chain-${g}`;
  for (const c of cfg.chains ?? []) c.name = chain;
  // Objects from special keys (admission-0, bypass-0, ...) get the group in their name.
  const rename = (n?: string) => n?.replace(/-(\d+)$/, `-${g}-$1`);
  for (const k of ACCESS_LISTS) for (const o of cfg[k] ?? []) o.name = rename(o.name)!;
  const fix = (o: { bypass?: string; resolver?: string; hosts?: string }) => {
    o.bypass = rename(o.bypass);
    o.resolver = rename(o.resolver);
    o.hosts = rename(o.hosts);
    for (const k of ["bypass", "resolver", "hosts"] as const) if (o[k] === undefined) delete o[k];
  };
  for (const c of cfg.chains ?? []) for (const h of c.hops) fix(h);
  for (const [i, s] of (cfg.services ?? []).entries()) {
    s.name = `service-${offset + i}`;
    if (s.handler.chain) s.handler.chain = chain;
    if (s.listener.chain) s.listener.chain = chain;
    fix(s);
    for (const k of ["admission", "limiter", "climiter", "rlimiter"] as const) {
      if (s[k] !== undefined) s[k] = rename(s[k]);
    }
  }
  return cfg;
}

/** Runs the CLI; resolves the process exit code. */
export async function runCli(argv: string[]): Promise<number> {
  let cfg: Config;
  let args;
  try {
    // GOST runs each ` -- `-separated group as its own worker with its own chain; here the
    // groups share one process, and group g's chain is named chain-g.
    const groups = splitGroups(argv);
    args = parseArgs(groups[0]!);
    const extra = groups.slice(1).map(parseArgs);
    for (const a of extra) {
      args.output ??= a.output;
      args.debug ||= a.debug;
      args.trace ||= a.trace;
      args.strict ||= a.strict;
    }
    if (args.help) {
      console.log(USAGE);
      return 0;
    }
    if (args.version) {
      console.log(
        `burrow ${VERSION} (deno ${Deno.version.deno} ${Deno.build.os}/${Deno.build.arch})`,
      );
      return 0;
    }
    const files: Config[] = [];
    const load = { diagnostics: consoleDiagnostics(args.strict) };
    for (const c of args.configs) files.push(await loadConfigSource(c, load));
    let fromCli: Config;
    try {
      fromCli = cliConfig(args.services, args.nodes);
      for (const [g, a] of extra.entries()) {
        for (const c of a.configs) files.push(await loadConfigSource(c, load));
        fromCli = mergeConfigs(fromCli, groupConfig(a, g + 1, fromCli.services?.length ?? 0));
      }
    } catch (e) {
      asUsage(e);
    }
    cfg = mergeConfigs(...files, fromCli);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      console.error(`burrow: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (args.output) {
    await Deno.stdout.write(new TextEncoder().encode(formatConfig(cfg, args.output)));
    return 0;
  }
  if (!cfg.services?.length) {
    console.error(`burrow: no services (give -L or -C)\n${USAGE}`);
    return 2;
  }
  let log: Logger;
  try {
    log = new Logger(
      levelOf(cfg, args.debug, args.trace),
      {},
      sinkFor(cfg.log?.output, cfg.log?.format),
    );
  } catch (e) {
    console.error(`burrow: log.output: ${errorText(e)}`);
    return 1;
  }
  let rt: Runtime;
  try {
    rt = await Runtime.start(cfg, {
      log,
      diagnostics: {
        strict: args.strict || cfg.strict === true,
        warn: (p, m) => log.warn(`${p}: ${m}`, { kind: "config" }),
      },
    });
  } catch (e) {
    console.error(`burrow: ${errorText(e)}`);
    // A configuration mistake is a usage error (2); a runtime failure such as a busy port is 1.
    return e instanceof ConfigError ? 2 : 1;
  }
  const stop = Promise.withResolvers<string>();
  const onSig = (name: string) => () => stop.resolve(name);
  const handlers: [Deno.Signal, () => void][] = [["SIGINT", onSig("SIGINT")], [
    "SIGTERM",
    onSig("SIGTERM"),
  ]];
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  const sig = await stop.promise;
  log.info(`${sig}: shutting down`, { kind: "process" });
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await rt.close(GRACE_MS);
  return 0;
}
