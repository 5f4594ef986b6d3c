// Chat-room load generator (the workload of Bun's bench/websocket-server, rewritten for pubsock's runner).
//
// Runs under Bun (preferred: its WebSocket client is native) or Node (needs the npm package `ws`).
//
//   bun bench/chat/chat-client.mjs --url ws://127.0.0.1:4001/ --clients 16 --size 16 --seconds 10
//
// N clients connect to URL?name=Alice0, Bob0, ... and each waits for its first message ("ready", which the
// server publishes 100 ms after the N-th open). A round: every client sends 1600 messages in one
// synchronous burst; the server publishes each one to the room including the sender, so a round is
// complete after N * 1600 * N deliveries. The next round starts on a 64 ms tick only once the previous one
// is complete (--delay, default 64; with --delay 0 it starts as soon as the previous one is complete).
// Deliveries are sampled every second. Note that the tick quantizes the metric: a round of N*1600*N
// deliveries takes a whole number of ticks, so fast servers report 1/k of N*1600*N per 64 ms.
//
// --size 16 (the default) sends Bun's original set: 50 short strings ("Hello World!", "zoo", ...) repeated
// 32 times. Any other --size sends 1600 ASCII strings of exactly that many bytes.
//
// --mode native (this script's default; the runner defaults to raw) uses the runtime's WebSocket client, as Bun's own chat-client.mjs does:
// one MessageEvent and one callback per delivery, so at ~2 M deliveries/s the client saturates its core.
// --mode raw speaks RFC 6455 over node:net itself: it writes each client's 1600 pre-masked frames in one
// write per round and counts incoming frames from their headers without building strings, so the client
// stays far from its core's limit. Both check that one delivery reads "<name>: <message>".
//
// --compress (Bun's COMPRESS=1 variant) offers permessage-deflate ("permessage-deflate;
// client_max_window_bits", as browsers do) and fails unless the server accepts it. With a --size other than
// 16 the messages are then JSON-like chat messages of exactly --size bytes that compress
// ({"type":"message","room":"lobby","user":"Alice0",...,"text":"<words>",...}). The raw mode still counts
// frames from their headers without inflating them (a compressed message is still one final frame, RSV1
// set), and checks a sample: the first CHECKS data frames of client 0 and the first of every other client
// are inflated (payload + 00 00 ff ff, node:zlib inflateRawSync) and must read "<name>: <message>". The
// result reports how many deliveries had RSV1 set and the bytes received per delivery. Clients always send
// uncompressed frames.
//
// --ready-sync (for servers on several processes: `python -m pubsock --workers N --broker ...`, whose workers
// each count only their own clients and so cannot say when all N are connected): instead of one text
// "ready", every worker publishes a BINARY message "ready <pid> <its local client count>" to the room every
// 100 ms until the first chat message reaches it. A socket is ready once the latest counts of the distinct
// pids it has heard from sum to N: it has then heard every worker that has clients, including the others
// through the broker, which proves its own worker's broker subscription is live. Binary frames are never
// counted as deliveries, sampled or checked (chat messages are text), so the late "ready"s still in flight
// when round 1 starts do not disturb the exact count of N * 1600 * N deliveries per round.
//
// stdout carries only JSON lines for the runner (bench/chat/run.py):
//   {"event":"connected", ...}                        all clients got "ready"
//   {"event":"sample","i":k,"deliveries":d,"ms":t}  one per sampling interval (t = measured interval length)
//   {"event":"result", ...}                           last line; also on error ("error" set)
// Human-readable progress goes to stderr.

const argv = typeof Bun !== "undefined" ? Bun.argv.slice(2) : process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
}
const URL_BASE = opt("url", "ws://127.0.0.1:4001/");
const CLIENTS = parseInt(opt("clients", "16"), 10);
const SIZE = parseInt(opt("size", "16"), 10);
const SECONDS = parseInt(opt("seconds", "10"), 10);
const DELAY = parseInt(opt("delay", "64"), 10);
const SAMPLE_MS = parseInt(opt("sample-ms", "1000"), 10);
const CONNECT_TIMEOUT_MS = parseFloat(opt("connect-timeout", "30")) * 1000;
const STALL_MS = parseFloat(opt("stall-timeout", "10")) * 1000;
const MODE = opt("mode", "native");
const COMPRESS = argv.includes("--compress");
const READY_SYNC = argv.includes("--ready-sync"); // binary "ready <pid> <count>" from each worker; binary frames not counted
const CHECKS = parseInt(opt("checks", COMPRESS ? "16" : "1"), 10); // client 0's frames inflated and checked
const OFFER = "permessage-deflate; client_max_window_bits";
if (MODE !== "native" && MODE !== "raw") throw new Error(`--mode must be native or raw, not ${MODE}`);

const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`;
const WebSocketImpl =
  MODE !== "native" ? null : typeof Bun !== "undefined" ? globalThis.WebSocket : (await import("ws")).WebSocket;

const SHORT = [
  "Hello World!", "Hello World! 1", "Hello World! 2", "Hello World! 3", "Hello World! 4",
  "Hello World! 5", "Hello World! 6", "Hello World! 7", "Hello World! 8", "Hello World! 9",
  "What is the meaning of life?", "where is the bathroom?", "zoo", "kangaroo", "erlang",
  "elixir", "bun", "mochi", "typescript", "javascript",
  "Hello World! 7", "Hello World! 8", "Hello World! 9", "What is the meaning of life?", "where is the bathroom?",
  "zoo", "kangaroo", "erlang", "elixir", "bun",
  "mochi", "typescript", "javascript", "Hello World! 7", "Hello World! 8",
  "Hello World! 9", "What is the meaning of life?", "Hello World! 7", "Hello World! 8", "Hello World! 9",
  "What is the meaning of life?", "where is the bathroom?", "zoo", "kangaroo", "erlang",
  "elixir", "bun", "mochi", "typescript", "javascript",
];
const PER_ROUND = 1600;
let MESSAGES;
if (SIZE === 16) {
  MESSAGES = [];
  for (let r = 0; r < 32; r++) MESSAGES.push(...SHORT);
} else {
  const variants = [];
  for (let v = 0; v < 50; v++) {
    if (COMPRESS) {
      variants.push(jsonMessage(v, SIZE));
      continue;
    }
    const head = `message ${v} `;
    variants.push((head + "x".repeat(Math.max(0, SIZE - head.length))).slice(0, SIZE));
  }
  MESSAGES = Array.from({ length: PER_ROUND }, (_, i) => variants[i % 50]);
}

// A JSON-like chat message of exactly `size` ASCII bytes (variant v), text made of everyday words picked by
// a 32-bit LCG, so that it compresses as real chat traffic does rather than as a run of one letter.
// bench/chat/compress_calls.py builds the same strings (json_message), byte for byte.
function jsonMessage(v, size) {
  const WORDS = [
    "the", "meeting", "starts", "at", "noon", "please", "review", "pull", "request", "before", "lunch",
    "deploy", "is", "done", "and", "tests", "are", "green", "can", "you", "check", "logs", "on", "staging",
    "server", "again", "thanks", "I", "think", "we", "should", "ship", "it", "today", "tomorrow", "maybe",
    "after", "standup", "let", "me", "know", "what", "this", "looks", "good", "to", "ok", "sounds", "great",
    "new", "build", "fails", "with", "a", "timeout", "in", "CI", "retry", "fixed", "typo", "docs", "for",
    "release", "notes", "who", "owns", "dashboard", "latency", "went", "up", "again?", "yes", "no", "lol",
  ];
  const USERS = ["Alice", "Bob", "Charlie", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy"];
  let x = (0x9e3779b9 ^ v) >>> 0;
  const user = `${USERS[v % USERS.length]}${Math.floor(v / USERS.length)}`;
  const head = `{"type":"message","room":"lobby","user":"${user}","id":${100000 + v},` +
    `"ts":${1732550400000 + v * 1337},"reply_to":null,"text":"`;
  const tail = `","tags":["chat","bench"],"edited":false}`;
  const need = size - head.length - tail.length;
  let text = "";
  while (text.length < need) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    text += (text ? " " : "") + WORDS[(x >>> 16) % WORDS.length];
  }
  return (head + text.slice(0, Math.max(0, need)) + tail).slice(0, size);
}
const MSG_BYTES = MESSAGES.reduce((a, m) => a + m.length, 0) / MESSAGES.length;

const FIRST = ["Alice", "Bob", "Charlie", "David", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Karl",
  "Linda", "Mike", "Nancy", "Oscar", "Peggy", "Quentin", "Ruth", "Steve", "Trudy", "Ursula", "Victor", "Wendy",
  "Xavier", "Yvonne", "Zach"];
const NAMES = Array.from({ length: CLIENTS }, (_, i) => FIRST[i % FIRST.length] + Math.floor(i / FIRST.length));
const NAME_SET = new Set(NAMES);

const emit = obj => process.stdout.write(JSON.stringify(obj) + "\n");
const log = s => process.stderr.write(`[chat-client] ${s}\n`);
const now = () => performance.now();

const samples = [];
let received = 0;
let rounds = 0;
let roundsStarted = 0;
let remaining = 0;
let more = false;
let lastDelivery = now();
let formatOk = null;
let firstBad = null;
let finished = false;
const errors = [];
// --compress bookkeeping (cheap: one bit test per frame header, one add per chunk).
let totalDelivered = 0; // data messages counted, "ready" included
let compressedFrames = 0; // final data frames with RSV1 set
let wireBytes = 0; // bytes received after the handshakes
let negotiated = null; // client 0's Sec-WebSocket-Extensions answer
let checked = 0; // deliveries inflated (if compressed) and checked
let checkedCompressed = 0;
let checkedBfinal = 0; // ... whose deflate data starts with a final block (one-shot compressors such as libdeflate)

function finish(error) {
  if (finished) return;
  finished = true;
  if (error) errors.push(error);
  emit({
    event: "result",
    runtime,
    mode: MODE,
    clients: CLIENTS,
    size: SIZE,
    avg_msg_bytes: MSG_BYTES,
    messages_per_round_per_client: MESSAGES.length,
    deliveries_per_round: CLIENTS * MESSAGES.length * CLIENTS,
    rounds_completed: rounds,
    rounds_started: roundsStarted,
    samples,
    format_ok: formatOk,
    first_bad_message: firstBad,
    compress: COMPRESS,
    extensions: negotiated,
    // raw mode only (the native client does not see frames):
    deliveries_total: MODE === "raw" ? totalDelivered : null,
    compressed_frames: MODE === "raw" ? compressedFrames : null,
    wire_bytes: MODE === "raw" ? wireBytes : null,
    checked,
    checked_compressed: checkedCompressed,
    checked_bfinal: checkedBfinal,
    error: errors.length ? errors.join("; ") : null,
  });
  process.exit(errors.length ? 2 : 0);
}

// ----------------------------------------------------------------------------------------- raw mode
// A minimal RFC 6455 client over node:net: handshake, pre-masked outgoing frames, incoming frames counted
// from their headers (payloads skipped, except the few captured for checks).
const net = MODE === "raw" ? await import("node:net") : null;
const zlib = COMPRESS ? await import("node:zlib") : null;
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// The text of one captured message: inflated first if its first frame had RSV1 set (RFC 7692 §7.2.2:
// append 00 00 ff ff; data ending in a final block, as one-shot compressors produce, inflates the same).
function decodePayload(buf, rsv1) {
  if (!rsv1) return buf.toString("utf8");
  try {
    return zlib
      .inflateRawSync(Buffer.concat([buf, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
      .toString("utf8");
  } catch (e) {
    return `<inflate failed: ${e.message}>`;
  }
}

function buildMaskedFrames(messages) {
  const mask = Buffer.from([0x5a, 0xc3, 0x3c, 0xa5]);
  const parts = [];
  for (const m of messages) {
    const payload = Buffer.from(m, "utf8");
    const len = payload.length;
    let head;
    if (len < 126) head = Buffer.from([0x81, 0x80 | len]);
    else if (len < 65536) head = Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
    else throw new Error("message too large for this client");
    for (let i = 0; i < len; i++) payload[i] ^= mask[i & 3];
    parts.push(head, mask, payload);
  }
  return Buffer.concat(parts);
}

class RawClient {
  constructor(url, name, index) {
    const u = new URL(url);
    this.index = index;
    this.name = name;
    this.onmessage = null; // (string) => void, for captured frames
    this.oncount = null; // (n) => void, data frames completed in a chunk
    this.captureLeft = 1; // capture the next data frames' payloads (count)
    this.capture = null;
    this.captureRsv1 = false;
    this.skip = 0;
    this.carry = null;
    this.head = Buffer.alloc(0);
    this.open = false;
    this.waiting = READY_SYNC; // --ready-sync: capture every frame (binary ones too) until the swap
    const sock = (this.sock = net.connect({ host: u.hostname, port: +u.port }));
    sock.setNoDelay(true);
    sock.on("connect", () => {
      sock.write(
        `GET ${u.pathname}?name=${name} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.from(`pubsock-bench-${index}`.padEnd(16, "-").slice(0, 16)).toString("base64")}\r\n` +
          `Sec-WebSocket-Version: 13\r\n` +
          (COMPRESS ? `Sec-WebSocket-Extensions: ${OFFER}\r\n` : "") +
          `\r\n`,
      );
    });
    sock.on("data", chunk => this.feed(chunk));
    sock.on("error", e => finish(`client ${index} (${name}): ${e.message}`));
    sock.on("close", () => finish(`client ${index} (${name}): connection closed`));
  }
  send(buf) {
    this.sock.write(buf);
  }
  endCapture(parts) {
    this.capture = null;
    this.captureLeft--;
    this.captured(Buffer.concat(parts), this.captureRsv1);
  }
  captured(payload, rsv1) {
    // onmessage(text, rsv1, bfinal): bfinal = the deflate data starts with a final block (BFINAL bit)
    if (this.onmessage) this.onmessage(decodePayload(payload, rsv1), rsv1, rsv1 && payload.length > 0 && (payload[0] & 1) === 1);
  }
  control(op, payload) {
    if (op === 0x8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      finish(`client ${this.index} (${this.name}): server sent Close ${code} ${payload.subarray(2).toString()}`);
    } else if (op === 0x9) {
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
      if (!/^HTTP\/1\.1 101/.test(status)) return finish(`client ${this.index}: handshake answered ${status}`);
      const ext = /\r\nsec-websocket-extensions:[ \t]*([^\r]*)/i.exec(this.head.toString("latin1", 0, k + 2));
      const answer = ext ? ext[1].trim() : null;
      if (this.index === 0) negotiated = answer;
      if (COMPRESS && !(answer && /^permessage-deflate\b/i.test(answer)))
        return finish(`client ${this.index}: the server did not accept permessage-deflate (answer: ${answer})`);
      // Sampled frames are inflated on their own, so the server must not keep context between messages.
      if (COMPRESS && !/server_no_context_takeover/i.test(answer))
        return finish(`client ${this.index}: the server kept its compression context (${answer}); the raw client ` +
          "checks single messages and needs server_no_context_takeover");
      if (!COMPRESS && answer) return finish(`client ${this.index}: unexpected extension ${answer}`);
      this.open = true;
      chunk = this.head.subarray(k + 4);
      this.head = null;
      if (chunk.length === 0) return;
    }
    wireBytes += chunk.length;
    if (this.carry) {
      chunk = Buffer.concat([this.carry, chunk]);
      this.carry = null;
    }
    const n = chunk.length;
    let pos = 0;
    let count = 0;
    let rsv1 = 0;
    if (this.skip > 0) {
      const take = this.skip < n ? this.skip : n;
      if (this.capture) this.capture.push(chunk.subarray(0, take));
      this.skip -= take;
      pos = take;
      if (this.skip === 0 && this.capture) this.endCapture(this.capture);
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
      if (b1 & 0x80) return finish(`client ${this.index}: server sent a masked frame`);
      const op = b0 & 0x0f;
      if (op >= 8) {
        if (n - pos < h + len) break; // whole control frame needed; carry it over
        this.control(op, chunk.subarray(pos + h, pos + h + len));
        pos += h + len;
        continue;
      }
      pos += h;
      const data = !(READY_SYNC && op === 2); // --ready-sync: binary frames are the workers' "ready"s
      if ((b0 & 0x80) && data) count++; // a final data frame ends one message (compressed or not: RSV1 = 0x40)
      if ((b0 & 0x40) && data) rsv1++;
      const avail = n - pos;
      if ((this.captureLeft > 0 || this.waiting) && (b0 & 0x80) && (data || this.waiting)) {
        this.captureRsv1 = (b0 & 0x40) !== 0;
        if (avail >= len) {
          this.captureLeft--;
          this.captured(chunk.subarray(pos, pos + len), this.captureRsv1);
        } else this.capture = [chunk.subarray(pos)];
      }
      if (avail >= len) pos += len;
      else {
        this.skip = len - avail;
        pos = n;
      }
    }
    if (pos < n) this.carry = chunk.subarray(pos);
    compressedFrames += rsv1;
    totalDelivered += count;
    if (count && this.oncount) this.oncount(count);
  }
}

// ----------------------------------------------------------------------------------------- the run
log(`${runtime} (${MODE}): connecting ${CLIENTS} clients to ${URL_BASE} (size ${SIZE}, avg ${MSG_BYTES.toFixed(1)} B)`);
const t0 = now();
const connectTimer = setTimeout(() => finish(`not all clients received "ready" within ${CONNECT_TIMEOUT_MS / 1000}s`), CONNECT_TIMEOUT_MS);

const clients = new Array(CLIENTS);
const ready = [];
// --ready-sync: a socket is ready when the latest local counts of the workers it heard sum to CLIENTS.
function readySync(i, resolve) {
  const counts = new Map();
  let done = false;
  return text => {
    if (done) return;
    const m = /^ready (\d+) (\d+)$/.exec(typeof text === "string" ? text : "");
    if (!m) {
      errors.push(`client ${i}: unexpected message while waiting for the workers' "ready": ${String(text).slice(0, 80)}`);
      done = true;
      return resolve();
    }
    counts.set(m[1], +m[2]);
    let sum = 0;
    for (const c of counts.values()) sum += c;
    if (sum === CLIENTS) {
      done = true;
      workersSeen = Math.max(workersSeen, counts.size);
      resolve();
    } else if (sum > CLIENTS) {
      errors.push(`client ${i}: the workers report ${sum} clients, more than ${CLIENTS}`);
      done = true;
      resolve();
    }
  };
}
let workersSeen = 0;
const utf8 = new TextDecoder();
for (let i = 0; i < CLIENTS; i++) {
  const url = URL_BASE;
  let ws;
  if (MODE === "raw") {
    ws = new RawClient(url, NAMES[i], i);
  } else {
    ws = new WebSocketImpl(`${url}?name=${NAMES[i]}`);
    ws.onerror = ev => finish(`client ${i} (${NAMES[i]}): error ${ev && ev.message ? ev.message : ""}`.trim());
    ws.onclose = ev => finish(`client ${i} (${NAMES[i]}): closed (code ${ev.code})`);
    ws.onopen = () => {
      // Bun's WebSocket and ws offer permessage-deflate themselves; ws.extensions is the server's answer.
      if (i === 0) negotiated = ws.extensions || null;
      if (COMPRESS && !/permessage-deflate/i.test(ws.extensions || ""))
        finish(`client ${i} (${NAMES[i]}): permessage-deflate not negotiated by the native client (extensions: ${JSON.stringify(ws.extensions)})`);
    };
  }
  clients[i] = ws;
  if (READY_SYNC) {
    if (MODE !== "raw") ws.binaryType = "arraybuffer";
    ready.push(
      new Promise(resolve => {
        const onReady = readySync(i, resolve);
        ws.onmessage = ev => {
          const d = MODE === "raw" ? ev : ev.data;
          onReady(typeof d === "string" ? d : utf8.decode(d));
        };
      }),
    );
    continue;
  }
  ready.push(
    new Promise(resolve => {
      ws.onmessage = ev => {
        const d = MODE === "raw" ? ev : ev.data;
        if (d !== "ready") errors.push(`client ${i}: first message was not "ready": ${String(d).slice(0, 80)}`);
        resolve();
      };
    }),
  );
}
await Promise.all(ready);
clearTimeout(connectTimer);
emit({ event: "connected", clients: CLIENTS, ms: +(now() - t0).toFixed(1), runtime, mode: MODE,
  ...(READY_SYNC ? { workers_seen: workersSeen } : {}) });
log(`all ${CLIENTS} clients ready after ${(now() - t0).toFixed(0)} ms`);

const PER_ROUND_TOTAL = CLIENTS * MESSAGES.length * CLIENTS;
remaining = PER_ROUND_TOTAL;

function checkFormat(d, rsv1 = false, bfinal = false) {
  // Each checked delivery must read "<name of a client>: <one of the sent messages>".
  const k = typeof d === "string" ? d.indexOf(": ") : -1;
  const ok = k > 0 && NAME_SET.has(d.slice(0, k)) && MESSAGES.includes(d.slice(k + 2));
  checked++;
  if (rsv1) checkedCompressed++;
  if (bfinal) checkedBfinal++;
  if (!ok && formatOk !== false) firstBad = typeof d === "string" ? d.slice(0, 120) : `<${typeof d}>`;
  formatOk = formatOk !== false && ok;
}

function deliver(n) {
  received += n;
  remaining -= n;
  if (remaining <= 0) {
    if (remaining < 0) errors.push(`more deliveries than expected in round ${rounds + 1}`);
    rounds++;
    remaining = PER_ROUND_TOTAL;
    if (DELAY > 0) more = true;
    else setImmediate(startRound); // --delay 0: next round as soon as this one is complete
  }
}

let roundPayload = null;
if (MODE === "raw") {
  roundPayload = buildMaskedFrames(MESSAGES);
  for (const c of clients) {
    c.oncount = deliver;
    c.onmessage = null;
    if (c.waiting) {
      c.waiting = false;
      c.capture = null; // a "ready" frame split over two chunks: drop it (chat frames cannot precede round 1)
    }
  }
  // Client 0 checks its first CHECKS deliveries; under --compress every other client checks its first one.
  for (let i = 0; i < CLIENTS; i++) {
    clients[i].captureLeft = i === 0 ? CHECKS : COMPRESS ? 1 : 0;
    clients[i].onmessage = checkFormat;
  }
} else if (READY_SYNC) {
  // Late "ready"s are binary (ArrayBuffer): skipped. Chat messages are text.
  for (const ws of clients) ws.onmessage = ev => { if (typeof ev.data === "string") deliver(1); };
  clients[0].onmessage = ev => {
    if (typeof ev.data !== "string") return;
    checkFormat(ev.data);
    clients[0].onmessage = ev2 => { if (typeof ev2.data === "string") deliver(1); };
    deliver(1);
  };
} else {
  for (const ws of clients) ws.onmessage = () => deliver(1);
  clients[0].onmessage = ev => {
    checkFormat(ev.data);
    clients[0].onmessage = () => deliver(1);
    deliver(1);
  };
}

function startRound() {
  roundsStarted++;
  if (MODE === "raw") {
    for (let i = 0; i < CLIENTS; i++) clients[i].send(roundPayload);
    return;
  }
  for (let i = 0; i < CLIENTS; i++) {
    const ws = clients[i];
    for (let j = 0; j < MESSAGES.length; j++) ws.send(MESSAGES[j]);
  }
}

let lastSample = now();
setInterval(() => {
  const t = now();
  const d = received;
  received = 0;
  samples.push({ deliveries: d, ms: +(t - lastSample).toFixed(2) });
  emit({ event: "sample", i: samples.length - 1, deliveries: d, ms: +(t - lastSample).toFixed(2) });
  lastSample = t;
  if (d > 0) lastDelivery = t;
  log(`${d} deliveries in ${(samples[samples.length - 1].ms / 1000).toFixed(3)} s (rounds completed ${rounds})`);
  if (samples.length >= SECONDS) finish(null);
  else if (t - lastDelivery > STALL_MS) finish(`stalled: no delivery for ${((t - lastDelivery) / 1000).toFixed(1)} s (${remaining} of a round outstanding)`);
}, SAMPLE_MS);

if (DELAY > 0)
  setInterval(() => {
    if (more) {
      more = false;
      startRound();
    }
  }, DELAY);
startRound();
