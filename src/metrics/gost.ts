/**
 * GOST's Prometheus metrics (docs/metrics.md): names, labels and buckets as GOST exports them,
 * plus the process metrics of prom-client (the npm client library; it runs under Deno). The copy
 * path never touches prom-client: services keep plain counters, which the collectors read at
 * scrape time; only per-connection and per-dial events (durations, chain errors) are observed
 * directly.
 * @module
 */
import client from "prom-client";
import { liveMuxSessions } from "../core/mux.ts";
import { kcpSnmp } from "../kcp/snmp.ts";
import { liveBundles } from "../bundle/bundle.ts";

/** What the collectors read from one service. */
export interface ServiceView {
  readonly name: string;
  readonly clients: ReadonlyMap<string, {
    requests: number;
    inFlight: number;
    errors: number;
    inputBytes: number;
    outputBytes: number;
  }>;
}

const REQUEST_BUCKETS = [.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60];
const CONNECT_BUCKETS = [.01, .05, .1, .25, .5, 1, 1.5, 2, 5, 10, 15, 30, 60];

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** The metrics of one runtime: a registry plus the hooks services and chains call. */
export class GostMetrics {
  readonly registry: client.Registry = new client.Registry();
  readonly #duration: client.Histogram<"service">;
  readonly #chainErrors: client.Counter<"chain" | "node">;
  readonly #connect: client.Histogram<"chain" | "node">;

  /** `services` lists the live services at scrape time. */
  constructor(services: () => Iterable<ServiceView>) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ host: hostname() });
    new client.Gauge({
      name: "gost_services",
      help: "Current number of services",
      registers,
      collect() {
        this.set([...services()].length);
      },
    });
    const perClient = (
      name: string,
      help: string,
      pick: (c: ServiceView["clients"] extends ReadonlyMap<string, infer C> ? C : never) => number,
      kind: "counter" | "gauge",
    ) => {
      const collect = function (
        this: client.Counter<"service" | "client"> | client.Gauge<"service" | "client">,
      ) {
        this.reset();
        for (const s of services()) {
          for (const [ip, c] of s.clients) {
            const v = pick(c);
            const labels = { service: s.name, client: ip };
            if (this instanceof client.Gauge) this.set(labels, v);
            else this.inc(labels, v);
          }
        }
      };
      const o = { name, help, labelNames: ["service", "client"] as const, registers, collect };
      return kind === "counter" ? new client.Counter(o) : new client.Gauge(o);
    };
    perClient(
      "gost_service_requests_total",
      "Total number of requests",
      (c) => c.requests,
      "counter",
    );
    perClient(
      "gost_service_requests_in_flight",
      "Current in-flight requests",
      (c) => c.inFlight,
      "gauge",
    );
    perClient(
      "gost_service_transfer_input_bytes_total",
      "Total service input data transfer size in bytes",
      (c) => c.inputBytes,
      "counter",
    );
    perClient(
      "gost_service_transfer_output_bytes_total",
      "Total service output data transfer size in bytes",
      (c) => c.outputBytes,
      "counter",
    );
    perClient(
      "gost_service_handler_errors_total",
      "Total service handler errors",
      (c) => c.errors,
      "counter",
    );
    this.#duration = new client.Histogram({
      name: "gost_service_request_duration_seconds",
      help: "Distribution of request latencies",
      labelNames: ["service"],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.#chainErrors = new client.Counter({
      name: "gost_chain_errors_total",
      help: "Total chain errors",
      labelNames: ["chain", "node"],
      registers,
    });
    this.#connect = new client.Histogram({
      name: "gost_chain_node_connect_duration_seconds",
      help: "Distribution of chain node connect latencies",
      labelNames: ["chain", "node"],
      buckets: CONNECT_BUCKETS,
      registers,
    });
    this.#burrowSeries();
  }

  /** Burrow's own series: multiplexing, KCP and bundle health (docs/metrics.md). */
  #burrowSeries(): void {
    const registers = [this.registry];
    const byRole = (pick: (s: { streamCount: number }) => number) => {
      const out = { client: 0, server: 0 };
      for (const [s, role] of liveMuxSessions) out[role] += pick(s);
      return out;
    };
    new client.Gauge({
      name: "burrow_mux_sessions",
      help: "Multiplexed sessions (mtcp, mws, mwss, mtls, kcp, mtmux) open now",
      labelNames: ["role"],
      registers,
      collect() {
        for (const [role, v] of Object.entries(byRole(() => 1))) this.set({ role }, v);
      },
    });
    new client.Gauge({
      name: "burrow_mux_streams",
      help: "Streams open on multiplexed sessions now",
      labelNames: ["role"],
      registers,
      collect() {
        for (const [role, v] of Object.entries(byRole((s) => s.streamCount))) this.set({ role }, v);
      },
    });
    const snmp = (name: string, help: string, pick: () => number) =>
      new client.Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(pick());
        },
      });
    snmp(
      "burrow_kcp_retransmitted_segments_total",
      "KCP segments sent again",
      () => kcpSnmp.retransSegs,
    );
    snmp(
      "burrow_kcp_fast_retransmitted_segments_total",
      "KCP segments resent after duplicate ACKs",
      () => kcpSnmp.fastRetransSegs,
    );
    snmp(
      "burrow_kcp_lost_segments_total",
      "KCP segments resent after their retransmission timeout",
      () => kcpSnmp.lostSegs,
    );
    snmp(
      "burrow_kcp_fec_recovered_total",
      "KCP packets rebuilt from FEC parity",
      () => kcpSnmp.fecRecovered,
    );
    snmp(
      "burrow_kcp_fec_errors_total",
      "FEC groups that could not rebuild a packet",
      () => kcpSnmp.fecErrors,
    );
    new client.Gauge({
      name: "burrow_bundle_links_up",
      help: "Links alive in open mtmux bundles",
      registers,
      collect() {
        let n = 0;
        for (const b of liveBundles) n += b.aliveLinks;
        this.set(n);
      },
    });
    new client.Gauge({
      name: "burrow_bundles",
      help: "mtmux bundles open now",
      registers,
      collect() {
        this.set(liveBundles.size);
      },
    });
  }

  /** A service connection ended (GOST observes the whole connection's lifetime). */
  connDone(service: string, seconds: number): void {
    this.#duration.observe({ service }, seconds);
  }

  nodeError(chain: string, node: string): void {
    this.#chainErrors.inc({ chain, node });
  }

  nodeConnected(chain: string, node: string, seconds: number): void {
    this.#connect.observe({ chain, node }, seconds);
  }

  /** The exposition's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  #runtime = false;

  /**
   * Adds prom-client's process and runtime metrics (idempotent). Called when an endpoint starts
   * (or at the first scrape), not before: their event-loop-delay histogram is native memory, 2 MiB
   * at once and 8 MiB after a slow turn of the loop, that a process nobody scrapes should not pay
   * (docs/performance.md).
   */
  startRuntimeMetrics(): void {
    if (this.#runtime) return;
    this.#runtime = true;
    client.collectDefaultMetrics({ register: this.registry });
  }

  /** The text exposition. */
  text(): Promise<string> {
    this.startRuntimeMetrics();
    return this.registry.metrics();
  }
}
