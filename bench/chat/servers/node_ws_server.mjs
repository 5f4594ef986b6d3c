// Chat-room server for Node + the npm package `ws` (no topics: keeps its own set and sends to each).
//   node bench/chat/servers/node_ws_server.mjs --port 4001 --clients 16
import { WebSocketServer } from "ws";

const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const PORT = parseInt(opt("port", "4001"), 10);
const HOST = opt("host", "127.0.0.1");
const CLIENTS = parseInt(opt("clients", "16"), 10);

const room = new Set();
const wss = new WebSocketServer({ host: HOST, port: PORT, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on("connection", (ws, req) => {
  const name = new URL(req.url, "http://x").searchParams.get("name");
  room.add(ws);
  if (room.size === CLIENTS) setTimeout(() => { for (const c of room) c.send("ready"); }, 100);
  ws.on("message", (data, isBinary) => {
    const out = `${name}: ${isBinary ? data : data.toString()}`;
    for (const c of room) c.send(out);
  });
  ws.on("close", () => room.delete(ws));
});
wss.on("listening", () => console.error(`node ${process.version} + ws chat server on ${HOST}:${PORT} waiting for ${CLIENTS} clients`));
