// Echo load generator for pubsock's echo benchmark (bench/echo/run.py). Runs under Bun (or Node).
//
//   bun bench/echo/echo-client.mjs --url ws://127.0.0.1:4001/ --connections 256 --in-flight 1 --seconds 10
//
// C connections (--connections) each keep K messages (--in-flight) of --size bytes (default 16) in flight:
// once all C are open, the client sends K messages on each, and sends one more on a connection each time an
// echo comes back on it. So C*K messages are always outstanding, and the figure is round trips (echoes
// received) per second, sampled every second.
//
// The client speaks RFC 6455 itself over node:net (the chat client's "raw" mode), so that it is not the
// bottleneck: outgoing frames are pre-masked once, the echoes that complete in one chunk of input are counted
// from their headers, and the same number of frames goes back in one write. Checks, all cheap: every echo
// is a final frame of the opcode and length sent; no connection gets more echoes than it sent messages; and
// the first echo on each connection carries exactly the payload sent on it (the payloads differ per
// connection, so crossed wires show up).
//
// --binary sends binary frames (default: text; the payload is ASCII either way).
//
// stdout carries only JSON lines for the runner:
//   {"event":"connected", ...}                          all connections open (HTTP 101 received)
//   {"event":"sample","i":k,"round_trips":n,"ms":t}     one per sampling interval (t = measured length)
//   {"event":"result", ...}                             last line; also on error ("error" set)
// Human-readable progress goes to stderr.

import net from "node:net";

const argv = typeof Bun !== "undefined" ? Bun.argv.slice(2) : process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
}
const URL_BASE = new URL(opt("url", "ws://127.0.0.1:4001/"));
const CONNECTIONS = parseInt(opt("connections", "256"), 10);
const IN_FLIGHT = parseInt(opt("in-flight", "1"), 10);
const SIZE = parseInt(opt("size", "16"), 10);
const SECONDS = parseInt(opt("seconds", "10"), 10);
const SAMPLE_MS = parseInt(opt("sample-ms", "1000"), 10);
const CONNECT_TIMEOUT_MS = parseFloat(opt("connect-timeout", "30")) * 1000;
const STALL_MS = parseFloat(opt("stall-timeout", "10")) * 1000;
const CONNECT_CONCURRENCY = parseInt(opt("connect-concurrency", "64"), 10);
const BINARY = argv.includes("--binary");
const OPCODE = BINARY ? 0x2 : 0x1;
if (!(CONNECTIONS > 0 && IN_FLIGHT > 0 && SIZE >= 8 && SIZE < 65536)) throw new Error("bad --connections/--in-flight/--size");

const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`;
const emit = obj => process.stdout.write(JSON.stringify(obj) + "\n");
const log = s => process.stderr.write(`[echo-client] ${s}\n`);
const now = () => performance.now();

// ----------------------------------------------------------------------------------------- frames
// Payload of connection i: "echo <i> " padded with "x" to SIZE bytes (ASCII, so valid UTF-8 for text).
function payloadOf(i) {
  const head = `echo ${i} `;
  return Buffer.from((head + "x".repeat(Math.max(0, SIZE - head.length))).slice(0, SIZE), "latin1");
}
// K copies of one masked frame, back to back: writing the first n*FRAME bytes sends n messages.
function maskedFrames(payload, k) {
  const mask = Buffer.from([0x5a, 0xc3, 0x3c, 0xa5]);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | OPCODE, 0x80 | len]) : Buffer.from([0x80 | OPCODE, 0x80 | 126, len >> 8, len & 0xff]);
  const masked = Buffer.from(payload);
  for (let j = 0; j < len; j++) masked[j] ^= mask[j & 3];
  const one = Buffer.concat([head, mask, masked]);
  return { frames: Buffer.concat(Array.from({ length: k }, () => one)), frameLen: one.length };
}

// ----------------------------------------------------------------------------------------- state
const samples = [];
let received = 0; // round trips in the current sampling interval
let total = 0;
let lastEcho = now();
let running = false;
let finished = false;
let firstChecked = 0; // connections whose first echo was compared with what they sent
const errors = [];
const conns = new Array(CONNECTIONS);

function finish(error) {
  if (finished) return;
  finished = true;
  if (error) errors.push(error);
  let min = Infinity;
  let max = 0;
  for (const c of conns) {
    const r = c ? c.echoes : 0;
    if (r < min) min = r;
    if (r > max) max = r;
  }
  emit({
    event: "result",
    runtime,
    connections: CONNECTIONS,
    in_flight: IN_FLIGHT,
    size: SIZE,
    opcode: BINARY ? "binary" : "text",
    samples,
    round_trips_total: total,
    per_connection_min: min === Infinity ? 0 : min,
    per_connection_max: max,
    first_echo_checked: firstChecked,
    error: errors.length ? errors.join("; ") : null,
  });
  process.exit(errors.length ? 2 : 0);
}

// ----------------------------------------------------------------------------------------- one connection
class Conn {
  constructor(index, onOpen) {
    this.index = index;
    this.payload = payloadOf(index);
    const { frames, frameLen } = maskedFrames(this.payload, IN_FLIGHT);
    this.frames = frames;
    this.frameLen = frameLen;
    this.sent = 0;
    this.echoes = 0;
    this.open = false;
    this.onOpen = onOpen;
    this.head = Buffer.alloc(0);
    this.carry = null; // an incomplete frame header or payload carried to the next chunk
    this.skip = 0; // payload bytes of the current frame still to come
    this.capture = null; // payload bytes of the first echo, while they arrive
    this.checkFirst = true;
    const sock = (this.sock = net.connect({ host: URL_BASE.hostname, port: +URL_BASE.port }));
    sock.setNoDelay(true);
    sock.on("connect", () => {
      const key = Buffer.from(`pubsock-echo-${index}`.padEnd(16, "-").slice(0, 16)).toString("base64");
      sock.write(
        `GET ${URL_BASE.pathname} HTTP/1.1\r\nHost: ${URL_BASE.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    sock.on("data", chunk => this.feed(chunk));
    sock.on("error", e => finish(`connection ${index}: ${e.message}`));
    sock.on("close", () => finish(`connection ${index}: closed by the server`));
  }
  send(n) {
    this.sent += n;
    this.sock.write(n === IN_FLIGHT ? this.frames : this.frames.subarray(0, n * this.frameLen));
  }
  checkPayload(buf) {
    this.checkFirst = false;
    firstChecked++;
    if (!buf.equals(this.payload))
      finish(`connection ${this.index}: echo ${JSON.stringify(buf.toString("latin1"))} != sent ${JSON.stringify(this.payload.toString("latin1"))}`);
  }
  control(op, payload) {
    if (op === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      finish(`connection ${this.index}: server sent Close ${code} ${payload.subarray(2).toString()}`);
    } else if (op === 0x9) {
      // Ping: answer with a masked Pong carrying the same payload.
      const mask = Buffer.from([1, 2, 3, 4]);
      const p = Buffer.from(payload);
      for (let i = 0; i < p.length; i++) p[i] ^= mask[i & 3];
      this.sock.write(Buffer.concat([Buffer.from([0x8a, 0x80 | p.length]), mask, p]));
    }
  }
  feed(chunk) {
    if (!this.open) {
      this.head = Buffer.concat([this.head, chunk]);
      const k = this.head.indexOf("\r\n\r\n");
      if (k < 0) return;
      const status = this.head.toString("latin1", 0, this.head.indexOf("\r\n"));
      if (!/^HTTP\/1\.1 101/.test(status)) return finish(`connection ${this.index}: handshake answered ${status}`);
      this.open = true;
      chunk = this.head.subarray(k + 4);
      this.head = null;
      this.onOpen(this);
      if (chunk.length === 0) return;
    }
    if (this.carry) {
      chunk = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    const n = chunk.length;
    let pos = 0;
    let count = 0;
    if (this.skip > 0) {
      const take = this.skip < n ? this.skip : n;
      if (this.capture) this.capture.push(chunk.subarray(pos, pos + take));
      this.skip -= take;
      pos = take;
      if (this.skip === 0 && this.capture) {
        const parts = this.capture;
        this.capture = null;
        this.checkPayload(Buffer.concat(parts));
      }
    }
    while (pos < n) {
      if (n - pos < 2) break;
      const b0 = chunk[pos];
      const b1 = chunk[pos + 1];
      let len = b1 & 0x7f;
      let h = 2;
      if (len === 126) {
        if (n - pos < 4) break;
        len = (chunk[pos + 2] << 8) | chunk[pos + 3];
        h = 4;
      } else if (len === 127) {
        if (n - pos < 10) break;
        len = Number(chunk.readBigUInt64BE(pos + 2));
        h = 10;
      }
      if (b1 & 0x80) return finish(`connection ${this.index}: server sent a masked frame`);
      const op = b0 & 0x0f;
      if (op >= 8) {
        if (n - pos < h + len) break; // whole control frame needed; carry it over
        this.control(op, chunk.subarray(pos + h, pos + h + len));
        pos += h + len;
        continue;
      }
      if (b0 !== (0x80 | OPCODE) || len !== SIZE)
        return finish(`connection ${this.index}: unexpected frame (byte 0 0x${b0.toString(16)}, length ${len}; sent 0x${(0x80 | OPCODE).toString(16)}, ${SIZE})`);
      pos += h;
      count++;
      const avail = n - pos;
      if (this.checkFirst) {
        if (avail >= len) this.checkPayload(chunk.subarray(pos, pos + len));
        else this.capture = [chunk.subarray(pos)];
      }
      if (avail >= len) pos += len;
      else {
        this.skip = len - avail;
        pos = n;
      }
    }
    if (pos < n) this.carry = chunk.subarray(pos);
    if (count) {
      this.echoes += count;
      if (this.echoes > this.sent) return finish(`connection ${this.index}: ${this.echoes} echoes for ${this.sent} messages sent`);
      received += count;
      total += count;
      if (running) this.send(count); // one more message for each echo
    }
  }
}

// ----------------------------------------------------------------------------------------- the run
log(`${runtime}: opening ${CONNECTIONS} connections to ${URL_BASE.href} (${IN_FLIGHT} in flight each, ${SIZE} B ${BINARY ? "binary" : "text"})`);
const t0 = now();
const connectTimer = setTimeout(() => finish(`not all connections open within ${CONNECT_TIMEOUT_MS / 1000}s`), CONNECT_TIMEOUT_MS);

// Open the connections with at most CONNECT_CONCURRENCY handshakes pending (a server's listen backlog may be
// shorter than C, and an overflowing SYN queue only costs retransmission delays).
await new Promise(resolve => {
  let next = 0;
  let opened = 0;
  const onOpen = () => {
    opened++;
    if (opened === CONNECTIONS) resolve();
    else if (next < CONNECTIONS) start();
  };
  const start = () => {
    const i = next++;
    conns[i] = new Conn(i, onOpen);
  };
  while (next < Math.min(CONNECT_CONCURRENCY, CONNECTIONS)) start();
});
clearTimeout(connectTimer);
emit({ event: "connected", connections: CONNECTIONS, ms: +(now() - t0).toFixed(1), runtime });
log(`all ${CONNECTIONS} connections open after ${(now() - t0).toFixed(0)} ms`);

running = true;
for (const c of conns) c.send(IN_FLIGHT);
let lastSample = now();
lastEcho = lastSample;
setInterval(() => {
  const t = now();
  const d = received;
  received = 0;
  const ms = +(t - lastSample).toFixed(2);
  samples.push({ round_trips: d, ms });
  emit({ event: "sample", i: samples.length - 1, round_trips: d, ms });
  lastSample = t;
  if (d > 0) lastEcho = t;
  log(`${d} round trips in ${(ms / 1000).toFixed(3)} s`);
  if (samples.length >= SECONDS) finish(null);
  else if (t - lastEcho > STALL_MS) finish(`stalled: no echo for ${((t - lastEcho) / 1000).toFixed(1)} s`);
}, SAMPLE_MS);
