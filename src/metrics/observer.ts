/**
 * The runtime's observer of conns and routes, with the Prometheus metrics behind it made on first
 * need: prom-client costs a process ~10 MiB of RSS (core/lazy.ts), so it is imported when a
 * metrics endpoint starts (at start-up or on the reload that adds one). Service and per-client
 * figures are read from the services at scrape time and so are whole from the start; the
 * histograms and the chain error counter begin when the metrics do (a Prometheus counter that
 * starts at zero reads as a fresh process).
 * @module
 */
import type { GostMetrics, ServiceView } from "./gost.ts";

/** A service and chain observer (the runtime's `observer`), as GostMetrics is. */
export class MetricsObserver {
  readonly #services: () => Iterable<ServiceView>;
  #metrics?: GostMetrics;
  #making?: Promise<GostMetrics>;

  /** `services` lists the live services at scrape time. */
  constructor(services: () => Iterable<ServiceView>) {
    this.#services = services;
  }

  /** The metrics, made (and prom-client imported) the first time this is called. */
  metrics(): Promise<GostMetrics> {
    if (this.#metrics) return Promise.resolve(this.#metrics);
    this.#making ??= import("./gost.ts").then(
      ({ GostMetrics }) => (this.#metrics = new GostMetrics(this.#services)),
      (e) => {
        this.#making = undefined;
        throw e;
      },
    );
    return this.#making;
  }

  connDone(service: string, seconds: number): void {
    this.#metrics?.connDone(service, seconds);
  }

  nodeError(chain: string, node: string): void {
    this.#metrics?.nodeError(chain, node);
  }

  nodeConnected(chain: string, node: string, seconds: number): void {
    this.#metrics?.nodeConnected(chain, node, seconds);
  }
}
