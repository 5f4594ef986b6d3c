// Open N idle WebSocket connections from several loopback source addresses and keep them open (Bun or Node).
//   bun bench/connections/idle-client.mjs --port 4001 --connections 10000 --per-address 2500 \
//       [--first-address 2] [--concurrency 64] [--warmup 200] [--compress]
// The same protocol as client.py (its docstring has the details): each connection binds to 127.0.0.K
// (K from --first-address, --per-address connections on each) and connects to 127.0.0.1:PORT over node:net,
// sends a minimal RFC 6455 opening handshake (offering `permessage-deflate; client_max_window_bits` under
// --compress) and reads the 101 answer; at most --concurrency handshakes are in flight. With --warmup W,
// the first W are opened, a "warm" event is printed and the client waits for a line "go" on stdin.
// stdout, JSON lines: {"event":"warm"}, {"event":"start"}, {"event":"connected","ms":...,"n":N,"deflate":k},
// {"event":"result","error":...} (on failure, then exit 1). Then it stays idle until stopped (by PID) or --hold s.
import net from "node:net";
import crypto from "node:crypto";

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const PORT = parseInt(opt("port", "4001"), 10);
const N = parseInt(opt("connections", "10000"), 10);
const PER = parseInt(opt("per-address", "2500"), 10);
const FIRST = parseInt(opt("first-address", "2"), 10);
const CONC = parseInt(opt("concurrency", "64"), 10);
const WARM = Math.min(parseInt(opt("warmup", "0"), 10), N);
const HOLD = parseFloat(opt("hold", "300"));
const TIMEOUT_MS = parseFloat(opt("handshake-timeout", "15")) * 1000;
const COMPRESS = argv.includes("--compress");
const PATH = opt("path", "/");

const emit = (ev) => process.stdout.write(JSON.stringify(ev) + "\n");
const source = (i) => `127.0.0.${FIRST + Math.floor(i / PER)}`;
if (FIRST + Math.floor((N - 1) / PER) > 254) {
  emit({ event: "result", error: "too many connections for the source addresses at --per-address" });
  process.exit(1);
}
const ext = COMPRESS ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "";
const request = () =>
  `GET ${PATH} HTTP/1.1\r\nHost: 127.0.0.1:${PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n${ext}\r\n`;

const conns = [];
let deflate = 0;
let failed = null;

function open(i) {
  return new Promise((resolve) => {
    let head = "";
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err && !failed) failed = `connection ${i} from ${source(i)}: ${err}`;
      resolve();
    };
    const sock = net.connect({ host: "127.0.0.1", port: PORT, localAddress: source(i) }, () => sock.write(request()));
    const timer = setTimeout(() => { finish("handshake timed out"); sock.destroy(); }, TIMEOUT_MS);
    sock.setNoDelay(true);
    sock.on("data", (chunk) => {
      if (done) return; // idle: nothing is expected after the 101
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      head = head.slice(0, end);
      const status = head.slice(0, head.indexOf("\r\n"));
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        finish(JSON.stringify(status));
        sock.destroy();
        return;
      }
      if (/permessage-deflate/i.test(head)) deflate++;
      conns.push(sock);
      finish(null);
    });
    sock.on("error", (e) => finish(e.message));
    sock.on("close", () => {
      if (done && !failed && conns.includes(sock)) failed = `the server closed an idle connection (${i})`;
      finish("closed during the handshake");
    });
  });
}

async function openRange(from, to) {
  let next = from;
  const worker = async () => {
    while (next < to && !failed) await open(next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONC, to - from) }, worker));
}

function readLine() {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (d) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        process.stdin.off("data", onData);
        process.stdin.pause();
        resolve(buf.slice(0, nl).trim());
      }
    };
    process.stdin.on("data", onData);
    process.stdin.on("end", () => resolve(""));
    process.stdin.resume();
  });
}

const runtime = typeof Bun !== "undefined" ? `bun ${Bun.version}` : `node ${process.version}`;
const sources = new Set(Array.from({ length: Math.ceil(N / PER) }, (_, k) => FIRST + k)).size;
if (WARM) {
  await openRange(0, WARM);
  if (failed) {
    emit({ event: "result", error: failed });
    process.exit(1);
  }
  emit({ event: "warm", n: conns.length });
  if ((await readLine()) !== "go") {
    emit({ event: "result", error: "stopped after the warm-up" });
    process.exit(1);
  }
}
emit({ event: "start", connections: N - WARM, sources });
const t0 = performance.now();
await openRange(WARM, N);
const ms = performance.now() - t0;
if (failed) {
  emit({ event: "result", error: failed, opened: conns.length });
  process.exit(1);
}
emit({ event: "connected", ms: Math.round(ms * 10) / 10, n: conns.length, deflate, sources, runtime });
setInterval(() => {
  if (failed) {
    emit({ event: "result", error: failed });
    process.exit(1);
  }
}, 500);
setTimeout(() => {
  emit({ event: "result", error: null });
  process.exit(0);
}, HOLD * 1000);
