// Idle-connections server for Bun: Bun.serve upgrades every request; the sockets do nothing.
//   bun bench/connections/servers/bun_server.js --port 4001 [--compress] [--subscribe]
// idleTimeout: 0 (the connections must stay open while measured). --compress: perMessageDeflate: true
// (shared compressor and decompressor). --subscribe: each socket subscribes to one topic in open.
const argv = Bun.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const PORT = parseInt(opt("port", "4001"), 10);
const HOST = opt("host", "127.0.0.1");
const COMPRESS = argv.includes("--compress");
const SUBSCRIBE = argv.includes("--subscribe");

const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("Upgrade failed", { status: 400 });
  },
  websocket: {
    perMessageDeflate: COMPRESS,
    idleTimeout: 0,
    open(ws) {
      if (SUBSCRIBE) ws.subscribe("room");
    },
    message(ws, message) {},
  },
});
console.error(`bun ${Bun.version} idle server on ${server.url}` + (COMPRESS ? ", perMessageDeflate: true" : "") +
  (SUBSCRIBE ? ", one topic each" : ""));
