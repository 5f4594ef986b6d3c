// Echo server for Bun: Bun.serve, every message sent back as is, no compression.
//   bun bench/echo/servers/bun_server.js --port 4001
const argv = Bun.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const PORT = parseInt(opt("port", "4001"), 10);
const HOST = opt("host", "127.0.0.1");

const server = Bun.serve({
  hostname: HOST,
  port: PORT,
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("Upgrade failed", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.error(`bun ${Bun.version} echo server on ${server.url}`);
