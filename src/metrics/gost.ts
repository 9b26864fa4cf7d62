/**
 * GOST's Prometheus metrics (docs/metrics.md): names, labels and buckets as GOST exports them,
 * plus the process metrics of prom-client (the npm client library; it runs under Deno). The copy
 * path never touches prom-client: services keep plain counters, which the collectors read at
 * scrape time; only per-connection and per-dial events (durations, chain errors) are observed
 * directly.
 * @module
 */
import client from "prom-client";

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

/** A mux session count or similar Burrow-specific gauge, read at scrape time. */
export interface GaugeSource {
  name: string;
  help: string;
  labels: string[];
  read(): Iterable<[Record<string, string>, number]>;
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
    client.collectDefaultMetrics({ register: this.registry });
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
  }

  /** Adds a gauge of Burrow's own (mux sessions and the like), read at scrape time. */
  addGauge(g: GaugeSource): void {
    new client.Gauge({
      name: g.name,
      help: g.help,
      labelNames: g.labels,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, v] of g.read()) this.set(labels, v);
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

  /** The text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
