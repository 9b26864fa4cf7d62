/**
 * The KCP ARQ engine as kcp-go implements it (docs/kcp.md §2): segments, RTO, fast and early
 * retransmit, windows, stream mode. Pure: no sockets, no timers; the caller feeds datagrams to
 * `input`, calls `flush` on a timer, and gets datagrams from `output`. Times are u32 ms.
 * @module
 */
import { kcpSnmp } from "./snmp.ts";
import { DATAGRAM_POOL } from "../core/buffer_pool.ts";

export const CMD_PUSH = 81;
export const CMD_ACK = 82;
export const CMD_WASK = 83;
export const CMD_WINS = 84;
export const OVERHEAD = 24;

const RTO_MIN = 100;
const RTO_NDL = 30;
const RTO_DEF = 200;
const RTO_MAX = 60000;
const ASK_SEND = 1;
const ASK_TELL = 2;
const PROBE_INIT = 7000;
const PROBE_LIMIT = 120000;
const THRESH_MIN = 2;

/** Signed 32-bit difference: wrap-safe ordering of sequence numbers and times. */
function diff(a: number, b: number): number {
  return (a - b) | 0;
}

interface Segment {
  cmd: number;
  frg: number;
  ts: number;
  sn: number;
  data: Uint8Array;
  resendts: number;
  rto: number;
  fastack: number;
  xmit: number;
  acked: boolean;
}

function seg(data: Uint8Array): Segment {
  return {
    cmd: CMD_PUSH,
    frg: 0,
    ts: 0,
    sn: 0,
    data,
    resendts: 0,
    rto: 0,
    fastack: 0,
    xmit: 0,
    acked: false,
  };
}

/** Why {@link Kcp.input} dropped a datagram: too short, another conversation, a segment
 * longer than the datagram, an unknown command. */
export type InputRefusal = "short" | "conv" | "truncated" | "command";

export class Kcp {
  readonly conv: number;
  mtu = 1400;
  mss = 1400 - OVERHEAD;
  /** Bytes kept free at the front of each output datagram for the envelope (FEC, crypto). */
  reserved = 0;
  interval = 100;
  nodelay = 0;
  fastresend = 0;
  nocwnd = 0;
  stream = true;

  sndUna = 0;
  sndNxt = 0;
  rcvNxt = 0;
  ssthresh = 2;
  rxRttvar = 0;
  rxSrtt = 0;
  rxRto = RTO_DEF;
  rxMinrto = RTO_MIN;
  sndWnd = 32;
  rcvWnd = 32;
  rmtWnd = 32;
  cwnd = 0;
  incr = 0;
  probe = 0;
  tsProbe = 0;
  probeWait = 0;

  sndQueue: Segment[] = [];
  rcvQueue: Segment[] = [];
  sndBuf: Segment[] = [];
  rcvBuf: Segment[] = [];
  #acks: number[] = [];
  #buf: Uint8Array;
  #out: (datagram: Uint8Array) => void;
  readonly #clock: () => number;

  constructor(conv: number, output: (datagram: Uint8Array) => void, clock: () => number) {
    this.conv = conv >>> 0;
    this.#out = output;
    this.#clock = clock;
    this.#buf = new Uint8Array(this.mtu);
  }

  /** Sets the mtu (datagram size including `reserved`). */
  setMtu(mtu: number, reserved = this.reserved): void {
    this.mtu = mtu;
    this.reserved = reserved;
    this.mss = mtu - OVERHEAD - reserved;
    this.#buf = new Uint8Array(mtu);
  }

  setNoDelay(nodelay: number, interval: number, resend: number, nc: number): void {
    if (nodelay >= 0) {
      this.nodelay = nodelay;
      this.rxMinrto = nodelay ? RTO_NDL : RTO_MIN;
    }
    if (interval >= 0) this.interval = Math.min(5000, Math.max(10, interval));
    if (resend >= 0) this.fastresend = resend;
    if (nc >= 0) this.nocwnd = nc;
  }

  setWindow(snd: number, rcv: number): void {
    if (snd > 0) this.sndWnd = snd;
    if (rcv > 0) this.rcvWnd = rcv;
  }

  /** Segments waiting to be sent or acknowledged. */
  get waitSnd(): number {
    return this.sndBuf.length + this.sndQueue.length;
  }

  /** Queues `data` (stream mode: tops up the last queued segment first). */
  send(data: Uint8Array): void {
    let off = 0;
    if (this.stream && this.sndQueue.length > 0) {
      const last = this.sndQueue[this.sndQueue.length - 1]!;
      if (last.data.length < this.mss) {
        const take = Math.min(this.mss - last.data.length, data.length);
        const merged = DATAGRAM_POOL.take(last.data.length + take);
        merged.set(last.data);
        merged.set(data.subarray(0, take), last.data.length);
        DATAGRAM_POOL.give(last.data);
        last.data = merged;
        off = take;
      }
    }
    while (off < data.length) {
      const n = Math.min(this.mss, data.length - off);
      // Pooled: handed back once acknowledged.
      const copy = DATAGRAM_POOL.take(n);
      copy.set(data.subarray(off, off + n));
      this.sndQueue.push(seg(copy));
      off += n;
    }
  }

  /** Takes in-order received data (stream mode: whole segments), up to `max` bytes. */
  recv(max: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let total = 0;
    const wasFull = this.rcvQueue.length >= this.rcvWnd;
    while (this.rcvQueue.length > 0 && total + this.rcvQueue[0]!.data.length <= max) {
      const s = this.rcvQueue.shift()!;
      out.push(s.data);
      total += s.data.length;
    }
    this.#moveRcvBuf();
    // The window reopened: tell the peer at the next flush.
    if (wasFull && this.rcvQueue.length < this.rcvWnd) this.probe |= ASK_TELL;
    return out;
  }

  /** Bytes ready for `recv`. */
  get readable(): number {
    let n = 0;
    for (const s of this.rcvQueue) n += s.data.length;
    return n;
  }

  #moveRcvBuf(): void {
    while (this.rcvBuf.length > 0) {
      const s = this.rcvBuf[0]!;
      if (s.sn !== this.rcvNxt || this.rcvQueue.length >= this.rcvWnd) break;
      this.rcvBuf.shift();
      this.rcvQueue.push(s);
      this.rcvNxt = (this.rcvNxt + 1) >>> 0;
    }
  }

  #updateAck(rtt: number): void {
    if (this.rxSrtt === 0) {
      this.rxSrtt = rtt;
      this.rxRttvar = rtt >> 1;
    } else {
      let delta = rtt - this.rxSrtt;
      this.rxSrtt += delta >> 3;
      if (delta < 0) delta = -delta;
      if (rtt < this.rxSrtt - this.rxRttvar) this.rxRttvar += (delta - this.rxRttvar) >> 5;
      else this.rxRttvar += (delta - this.rxRttvar) >> 2;
    }
    const rto = this.rxSrtt + Math.max(this.interval, this.rxRttvar << 2);
    this.rxRto = Math.min(RTO_MAX, Math.max(this.rxMinrto, rto));
  }

  #shrinkBuf(): void {
    this.sndUna = this.sndBuf.length > 0 ? this.sndBuf[0]!.sn : this.sndNxt;
  }

  /**
   * Feeds one datagram (envelope removed). `regular` is false for FEC-recovered data (no
   * window update, no RTT sample). Returns null when taken, or why a malformed datagram was
   * dropped (segments before the bad one were taken, as in kcp-go).
   */
  input(data: Uint8Array, regular = true, ackNoDelay = false): InputRefusal | null {
    const prevUna = this.sndUna;
    let latest = 0;
    let sawAck = false;
    let maxAck = 0;
    let maxAckTs = 0;
    let off = 0;
    const now = this.#clock();
    if (data.length < OVERHEAD) return "short";
    while (data.length - off >= OVERHEAD) {
      const conv =
        (data[off]! | (data[off + 1]! << 8) | (data[off + 2]! << 16) | (data[off + 3]! << 24)) >>>
        0;
      if (conv !== this.conv) return "conv";
      const cmd = data[off + 4]!;
      const frg = data[off + 5]!;
      const wnd = data[off + 6]! | (data[off + 7]! << 8);
      const ts = (data[off + 8]! | (data[off + 9]! << 8) | (data[off + 10]! << 16) |
        (data[off + 11]! << 24)) >>> 0;
      const sn = (data[off + 12]! | (data[off + 13]! << 8) | (data[off + 14]! << 16) |
        (data[off + 15]! << 24)) >>> 0;
      const una = (data[off + 16]! | (data[off + 17]! << 8) | (data[off + 18]! << 16) |
        (data[off + 19]! << 24)) >>> 0;
      const len = (data[off + 20]! | (data[off + 21]! << 8) | (data[off + 22]! << 16) |
        (data[off + 23]! << 24)) >>> 0;
      off += OVERHEAD;
      if (data.length - off < len) return "truncated";
      if (cmd < CMD_PUSH || cmd > CMD_WINS) return "command";
      if (regular) this.rmtWnd = wnd;
      // una: everything below it arrived.
      while (this.sndBuf.length > 0 && diff(una, this.sndBuf[0]!.sn) > 0) {
        DATAGRAM_POOL.give(this.sndBuf.shift()!.data);
      }
      this.#shrinkBuf();
      if (cmd === CMD_ACK) {
        // sndBuf holds consecutive sns from its head: index by offset instead of scanning.
        if (this.sndBuf.length > 0) {
          const idx = diff(sn, this.sndBuf[0]!.sn);
          if (idx >= 0 && idx < this.sndBuf.length) this.sndBuf[idx]!.acked = true;
        }
        while (this.sndBuf.length > 0 && this.sndBuf[0]!.acked) {
          DATAGRAM_POOL.give(this.sndBuf.shift()!.data);
        }
        this.#shrinkBuf();
        if (!sawAck || diff(sn, maxAck) > 0) {
          maxAck = sn;
          maxAckTs = ts;
        }
        latest = ts;
        sawAck = true;
      } else if (cmd === CMD_PUSH) {
        if (diff(sn, (this.rcvNxt + this.rcvWnd) >>> 0) < 0) {
          this.#acks.push(sn, ts);
          if (diff(sn, this.rcvNxt) >= 0) {
            let i = this.rcvBuf.length - 1;
            let dup = false;
            for (; i >= 0; i--) {
              const d = diff(sn, this.rcvBuf[i]!.sn);
              if (d === 0) {
                dup = true;
                break;
              }
              if (d > 0) break;
            }
            if (!dup) {
              // Pooled: the session's read queue hands it back once read.
              const copy = DATAGRAM_POOL.take(len);
              copy.set(data.subarray(off, off + len));
              const s = seg(copy);
              s.sn = sn;
              s.frg = frg;
              s.ts = ts;
              this.rcvBuf.splice(i + 1, 0, s);
            }
            this.#moveRcvBuf();
          }
        }
      } else if (cmd === CMD_WASK) {
        this.probe |= ASK_TELL;
      }
      off += len;
    }
    if (sawAck) {
      // Fast-ack counting once per datagram, against the highest sn acknowledged (kcp-go).
      for (const s of this.sndBuf) {
        if (diff(maxAck, s.sn) <= 0) break;
        if (!s.acked && diff(maxAckTs, s.ts) >= 0) s.fastack++;
      }
      if (regular && diff(now, latest) >= 0) this.#updateAck(diff(now, latest));
    }
    if (this.nocwnd === 0 && diff(this.sndUna, prevUna) > 0 && this.cwnd < this.rmtWnd) {
      const mss = this.mss;
      if (this.cwnd < this.ssthresh) {
        this.cwnd++;
        this.incr += mss;
      } else {
        if (this.incr < mss) this.incr = mss;
        this.incr += Math.floor((mss * mss) / this.incr) + Math.floor(mss / 16);
        if ((this.cwnd + 1) * mss <= this.incr) this.cwnd = Math.ceil(this.incr / mss);
      }
      if (this.cwnd > this.rmtWnd) {
        this.cwnd = this.rmtWnd;
        this.incr = this.rmtWnd * mss;
      }
    }
    if (diff(this.sndUna, prevUna) > 0) this.flush(false);
    else if (ackNoDelay && this.#acks.length > 0) this.flush(true);
    // #acks holds (sn, ts) pairs: flush once half a datagram of ACKs is waiting.
    else if (this.#acks.length >= this.#ackBatch()) this.flush(true);
    return null;
  }

  /**
   * ACKs that fill one datagram. A receiver that waits for its interval timer (kcp-go's way)
   * lets a fast sender's whole window sit unacknowledged for up to `interval` ms (kcptun →
   * Burrow ran at ~26 MB/s that way, ~36 with early ACKs). Flushing ACKs once half a datagram
   * of them waits keeps the window sliding for about one extra datagram per ~27 received, and
   * stays within the protocol: ACK timing is the receiver's choice.
   */
  #ackBatch(): number {
    return Math.max(1, Math.floor((this.mtu - this.reserved) / OVERHEAD));
  }

  #wndUnused(): number {
    return Math.max(0, this.rcvWnd - this.rcvQueue.length);
  }

  /**
   * Sends ACKs, probes, new and retransmitted segments. Returns ms until the next flush is
   * needed (≤ interval).
   */
  flush(ackOnly: boolean): number {
    const now = this.#clock();
    const buf = this.#buf;
    const reserved = this.reserved;
    let ptr = reserved;
    const wnd = this.#wndUnused();
    const una = this.rcvNxt;
    const emit = () => {
      if (ptr > reserved) {
        // A pooled copy: the sender hands it back once the datagram is out.
        const d = DATAGRAM_POOL.take(ptr);
        d.set(buf.subarray(0, ptr));
        this.#out(d);
      }
      ptr = reserved;
    };
    const put = (cmd: number, frg: number, ts: number, sn: number, data?: Uint8Array) => {
      const len = data ? data.length : 0;
      if (ptr + OVERHEAD + len > this.mtu) emit();
      const b = buf;
      let p = ptr;
      const c = this.conv;
      b[p] = c, b[p + 1] = c >>> 8, b[p + 2] = c >>> 16, b[p + 3] = c >>> 24;
      b[p + 4] = cmd, b[p + 5] = frg, b[p + 6] = wnd, b[p + 7] = wnd >>> 8;
      b[p + 8] = ts, b[p + 9] = ts >>> 8, b[p + 10] = ts >>> 16, b[p + 11] = ts >>> 24;
      b[p + 12] = sn, b[p + 13] = sn >>> 8, b[p + 14] = sn >>> 16, b[p + 15] = sn >>> 24;
      b[p + 16] = una, b[p + 17] = una >>> 8, b[p + 18] = una >>> 16, b[p + 19] = una >>> 24;
      b[p + 20] = len, b[p + 21] = len >>> 8, b[p + 22] = len >>> 16, b[p + 23] = len >>> 24;
      p += OVERHEAD;
      if (data) b.set(data, p), p += len;
      ptr = p;
    };

    // 1. ACKs (those below rcv_nxt are covered by una, except the last one).
    const acks = this.#acks;
    for (let i = 0; i < acks.length; i += 2) {
      const sn = acks[i]!;
      if (diff(sn, this.rcvNxt) >= 0 || i === acks.length - 2) put(CMD_ACK, 0, acks[i + 1]!, sn);
    }
    this.#acks = [];
    if (ackOnly) {
      emit();
      return this.interval;
    }

    // 2. Window probing.
    if (this.rmtWnd === 0) {
      if (this.probeWait === 0) {
        this.probeWait = PROBE_INIT;
        this.tsProbe = (now + this.probeWait) >>> 0;
      } else if (diff(now, this.tsProbe) >= 0) {
        if (this.probeWait < PROBE_INIT) this.probeWait = PROBE_INIT;
        this.probeWait = Math.min(PROBE_LIMIT, this.probeWait + (this.probeWait >> 1));
        this.tsProbe = (now + this.probeWait) >>> 0;
        this.probe |= ASK_SEND;
      }
    } else {
      this.tsProbe = 0;
      this.probeWait = 0;
    }
    if (this.probe & ASK_SEND) put(CMD_WASK, 0, 0, 0);
    if (this.probe & ASK_TELL) put(CMD_WINS, 0, 0, 0);
    this.probe = 0;

    // 3. Move segments into the send window.
    let cwnd = Math.min(this.sndWnd, this.rmtWnd);
    if (this.nocwnd === 0) cwnd = Math.min(this.cwnd, cwnd);
    let newSegs = 0;
    while (this.sndQueue.length > 0 && diff(this.sndNxt, (this.sndUna + cwnd) >>> 0) < 0) {
      const s = this.sndQueue.shift()!;
      s.sn = this.sndNxt;
      this.sndNxt = (this.sndNxt + 1) >>> 0;
      this.sndBuf.push(s);
      newSegs++;
    }

    // 4. Transmit decisions.
    const resent = this.fastresend > 0 ? this.fastresend : 0xffffffff;
    let change = 0;
    let lost = false;
    let minrto = this.interval;
    for (const s of this.sndBuf) {
      if (s.acked) continue;
      let needSend = false;
      if (s.xmit === 0) {
        needSend = true;
        s.rto = this.rxRto;
        s.resendts = (now + s.rto) >>> 0;
      } else if (s.fastack >= resent) {
        needSend = true;
        s.fastack = 0;
        s.rto = this.rxRto;
        s.resendts = (now + s.rto) >>> 0;
        change++;
        kcpSnmp.fastRetransSegs++;
      } else if (s.fastack > 0 && newSegs === 0) {
        needSend = true;
        s.fastack = 0;
        s.rto = this.rxRto;
        s.resendts = (now + s.rto) >>> 0;
        change++;
      } else if (diff(now, s.resendts) >= 0) {
        needSend = true;
        s.rto += this.nodelay === 0 ? this.rxRto : this.rxRto >> 1;
        s.fastack = 0;
        s.resendts = (now + s.rto) >>> 0;
        lost = true;
        kcpSnmp.lostSegs++;
      }
      if (needSend) {
        if (s.xmit > 0) kcpSnmp.retransSegs++;
        s.xmit++;
        s.ts = now;
        put(CMD_PUSH, s.frg, s.ts, s.sn, s.data);
      }
      const left = diff(s.resendts, now);
      if (left > 0 && left < minrto) minrto = left;
    }
    emit();

    // 6. Congestion bookkeeping.
    if (this.nocwnd === 0) {
      if (change > 0) {
        const inflight = diff(this.sndNxt, this.sndUna);
        this.ssthresh = Math.max(THRESH_MIN, inflight >> 1);
        this.cwnd = this.ssthresh + resent;
        this.incr = this.cwnd * this.mss;
      }
      if (lost) {
        this.ssthresh = Math.max(THRESH_MIN, cwnd >> 1);
        this.cwnd = 1;
        this.incr = this.mss;
      }
      if (this.cwnd < 1) {
        this.cwnd = 1;
        this.incr = this.mss;
      }
    }
    return minrto;
  }
}
