// Chat-room server for Bun: Bun.serve + native pub/sub (server/ws.publish), no compression by default.
//   bun bench/chat/servers/bun_server.js --port 4001 --clients 16 [--compress]
// --compress (Bun's COMPRESS=1): perMessageDeflate: true (shared compressor and decompressor) and
// ws.publish(topic, msg, true). uWS compresses a published message in each subscriber's send().
const argv = Bun.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const PORT = parseInt(opt("port", "4001"), 10);
const HOST = opt("host", "127.0.0.1");
const CLIENTS = parseInt(opt("clients", "16"), 10);
const COMPRESS = argv.includes("--compress");
const LIMIT = 16 * 1024 * 1024; // backpressure limit pinned to 16 MiB in every server compared

let connected = 0;
const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  fetch(req, server) {
    const name = new URL(req.url).searchParams.get("name");
    if (server.upgrade(req, { data: { name } })) return;
    return new Response("Upgrade failed", { status: 400 });
  },
  websocket: {
    perMessageDeflate: COMPRESS,
    publishToSelf: true,
    backpressureLimit: LIMIT,
    closeOnBackpressureLimit: false,
    maxPayloadLength: LIMIT,
    open(ws) {
      ws.subscribe("room");
      if (++connected === CLIENTS) setTimeout(() => server.publish("room", "ready"), 100);
    },
    message(ws, message) {
      if (ws.publish("room", `${ws.data.name}: ${message}`, COMPRESS) === 0) {
        console.error("publish dropped a message (backpressure limit reached)");
        process.exit(3);
      }
    },
    close(ws) {
      connected--;
    },
  },
});
console.error(`bun ${Bun.version} chat server on ${server.url} waiting for ${CLIENTS} clients` +
  (COMPRESS ? ", perMessageDeflate: true, compressed publishes" : ""));
