/** A Burrow child process for end-to-end tests: its JSON log lines, and waits on them. */
import { until } from "./_helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** One parsed log record. */
export type LogRecord = Record<string, unknown> & { msg: string; level: string };

/** `deno run main.ts args...` with stderr collected as log records. */
export class BurrowChild {
  readonly #child: Deno.ChildProcess;
  readonly records: LogRecord[] = [];
  readonly #reading: Promise<void>;

  /** `opts.prefix` runs it under another command, e.g. `["ip", "netns", "exec", "ns1"]`. */
  constructor(
    args: string[],
    opts: { env?: Record<string, string>; cwd?: string; prefix?: string[] } = {},
  ) {
    const argv = [Deno.execPath(), "run", "-A", "--unstable-net", MAIN, ...args];
    const cmd = [...(opts.prefix ?? []), ...argv];
    const child = new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      stdout: "null",
      stderr: "piped",
      env: opts.env,
      cwd: opts.cwd,
    }).spawn();
    this.#child = child;
    this.#reading = (async () => {
      let rest = "";
      const dec = new TextDecoder();
      for await (const chunk of child.stderr) {
        rest += dec.decode(chunk, { stream: true });
        let nl;
        while ((nl = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, nl);
          rest = rest.slice(nl + 1);
          try {
            this.records.push(JSON.parse(line));
          } catch {
            this.records.push({ msg: line, level: "raw" });
          }
        }
      }
    })();
  }

  /** The first record matching `pred`, waiting up to `ms`. */
  async waitFor(
    pred: (r: LogRecord) => boolean,
    ms = 15_000,
    what = "log line",
  ): Promise<LogRecord> {
    let hit: LogRecord | undefined;
    await until(
      () => (hit = this.records.find(pred)) !== undefined,
      ms,
      `${what} (log: ${this.tail()})`,
    );
    return hit!;
  }

  /** The port service `name` logged it listens on (`listening on host:port/tcp`). */
  async servicePort(name: string, ms = 15_000): Promise<number> {
    const r = await this.waitFor(
      (r) => r.service === name && /^listening on /.test(r.msg),
      ms,
      `service ${name} listening`,
    );
    return Number(/:(\d+)\/\w+$/.exec(r.msg)![1]);
  }

  /** The port the endpoint of `kind` (api, metrics) logged. */
  async endpointPort(kind: string, ms = 15_000): Promise<number> {
    const r = await this.waitFor((r) => r.kind === kind && /^listening on /.test(r.msg), ms, kind);
    return Number(/:(\d+)$/.exec(r.msg)![1]);
  }

  /** The last few log messages, for failure messages. */
  tail(n = 8): string {
    return this.records.slice(-n).map((r) => r.msg).join(" | ");
  }

  kill(sig: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(sig);
    } catch { /* already gone */ }
  }

  /** Stops the child (SIGTERM) and waits for it and its log. */
  async stop(): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    const st = await this.#child.status;
    await this.#reading;
    return st;
  }
}
