/** One row of the benchmark table. */
export interface BenchRow {
  /** What was measured, e.g. "mtcp 1 stream". */
  name: string;
  /** Throughput in MB/s (10^6 bytes per second), if measured. */
  mbps?: number;
  /** Any other measurement, e.g. "rss 40 MB" or "p50 0.2 ms". */
  note?: string;
}

/** A benchmark module: returns its rows. Keep each under ~30 s on 2 cores. */
export type BenchModule = () => Promise<BenchRow[]>;
