/**
 * Network namespaces for tests that need real interfaces (transparent proxies, tun/tap): a set of
 * namespaces built from `ip`/`iptables` steps, torn down after each test. Building them once at
 * load tells whether this machine can (root, iproute2, the commands a test needs); tests are
 * skipped with the reason when it cannot.
 */
import { hasCommand } from "./_helpers.ts";

/** Runs a command to completion; never throws. */
export function run(cmd: string[]): { ok: boolean; out: string } {
  try {
    const o = new Deno.Command(cmd[0]!, { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
      .outputSync();
    return {
      ok: o.success,
      out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr),
    };
  } catch (e) {
    return { ok: false, out: String(e) };
  }
}

/** Namespaces a test file builds with `steps` (which must begin by adding them). */
export class Namespaces {
  readonly names: string[];
  readonly #needs: string[];
  /** Why this machine cannot build them (null when it can), found once at load. */
  readonly why: string | null;

  constructor(
    readonly what: string,
    names: string[],
    needs: string[],
    readonly steps: (variant?: string) => string[][],
  ) {
    this.names = names;
    this.#needs = ["ip", ...needs];
    this.why = this.up();
    if (this.why) console.warn(`${what}: cannot build network namespaces (${this.why}): skipping`);
    else this.down(); // built per test
  }

  /** Builds them (a `variant` picks other steps); the reason when a step fails, else null. */
  up(variant?: string): string | null {
    if (Deno.build.os !== "linux") return "not Linux";
    for (const c of this.#needs) if (!hasCommand(c)) return `${c} missing`;
    for (const s of this.steps(variant)) {
      const r = run(s);
      if (!r.ok) {
        this.down();
        return `${s.join(" ")}: ${r.out.trim()}`;
      }
    }
    return null;
  }

  down(): void {
    for (const n of this.names) run(["ip", "netns", "del", n]);
  }

  /** `ip netns exec <ns>`, to put in front of a command. */
  exec(ns: string): string[] {
    return ["ip", "netns", "exec", ns];
  }
}

/** Steps that add the namespaces, a veth pair between two of them, addresses, links up. */
export function vethSteps(
  a: { ns: string; dev: string; addr: string },
  b: { ns: string; dev: string; addr: string },
): string[][] {
  return [
    ["ip", "link", "add", a.dev, "type", "veth", "peer", "name", b.dev],
    ["ip", "link", "set", a.dev, "netns", a.ns],
    ["ip", "link", "set", b.dev, "netns", b.ns],
    ["ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev],
    ["ip", "-n", b.ns, "addr", "add", b.addr, "dev", b.dev],
    ["ip", "-n", a.ns, "link", "set", a.dev, "up"],
    ["ip", "-n", b.ns, "link", "set", b.dev, "up"],
  ];
}

/** Steps that add namespaces with their loopback up. */
export function nsSteps(...names: string[]): string[][] {
  return [
    ...names.map((n) => ["ip", "netns", "add", n]),
    ...names.map((n) => ["ip", "-n", n, "link", "set", "lo", "up"]),
  ];
}

/**
 * iptables TPROXY of `proto` traffic arriving on `dev` for `dst:dport` to local `port`, with the
 * fwmark rule and local route TPROXY needs.
 */
export function tproxySteps(
  ns: string,
  dev: string,
  proto: "tcp" | "udp",
  dst: string,
  dport: number,
  port: number,
): string[][] {
  return [
    [
      ..."ip netns exec".split(" "),
      ns,
      ..."iptables -t mangle -A PREROUTING -i".split(" "),
      dev,
      "-p",
      proto,
      "-d",
      dst,
      "--dport",
      String(dport),
      ..."-j TPROXY --on-port".split(" "),
      String(port),
      "--tproxy-mark",
      "1",
    ],
    ["ip", "-n", ns, "rule", "add", "fwmark", "1", "lookup", "100"],
    ["ip", "-n", ns, "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100"],
  ];
}
