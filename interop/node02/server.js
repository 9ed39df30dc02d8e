"use strict";
// A Node Socket.IO server using @socket.io/redis-streams-adapter 0.2.3 (the streams-only layout, with heartbeats),
// driven by the Go interop test ../node02_test.go.
//
// Environment: REDIS_URL, STREAM_NAME, HEARTBEAT_INTERVAL and HEARTBEAT_TIMEOUT (ms), LABEL (the value this server's
// serverSideEmit handler acknowledges "hello" with). Prints "READY <port>" once it listens; exits when stdin closes.
//
// Control API, on the same port: POST /ctl/<op> with a JSON body, JSON answer ({"error": msg}, status 500, on failure).
//   count {}                     -> {count}                   adapter.serverCount()
//   emit {event, args}           -> {}                        io.emit
//   fetch {timeout?}             -> {ids, err}                io.fetchSockets()
//   sse-ack {event, args}        -> {responses, err}          io.serverSideEmitWithAck
//   emit-ack {event, timeout}    -> {responses, err}          io.timeout(t).emitWithAck
const http = require("http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");

const int = (v, d) => (v === undefined || v === "" ? d : parseInt(v, 10));

async function main() {
  const redis = createClient({ url: process.env.REDIS_URL || "redis://127.0.0.1:6379" });
  redis.on("error", (err) => console.error("redis error:", err.message));
  await redis.connect();

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(redis, {
      streamName: process.env.STREAM_NAME || "socket.io",
      heartbeatInterval: int(process.env.HEARTBEAT_INTERVAL, 5000),
      heartbeatTimeout: int(process.env.HEARTBEAT_TIMEOUT, 10000),
    }),
  });
  io.on("hello", (...args) => {
    const cb = args[args.length - 1];
    if (typeof cb === "function") cb(process.env.LABEL || "node02");
  });

  const ops = {
    count: async () => ({ count: await io.of("/").adapter.serverCount() }),
    emit: async (b) => {
      (b.to ? io.to(b.to) : io).emit(b.event, ...(b.args || []));
      return {};
    },
    join: async (b) => {
      (b.in ? io.in(b.in) : io).socketsJoin(b.rooms);
      return {};
    },
    leave: async (b) => {
      (b.in ? io.in(b.in) : io).socketsLeave(b.rooms);
      return {};
    },
    disconnect: async (b) => {
      (b.in ? io.in(b.in) : io).disconnectSockets(!!b.close);
      return {};
    },
    fetch: async (b) => {
      try {
        const sockets = await (b.timeout ? io.timeout(b.timeout) : io).fetchSockets();
        return { ids: sockets.map((s) => s.id), err: "" };
      } catch (e) {
        return { ids: [], err: e.message };
      }
    },
    "sse-ack": async (b) => {
      try {
        return { responses: await io.serverSideEmitWithAck(b.event, ...(b.args || [])), err: "" };
      } catch (e) {
        return { responses: [], err: e.message };
      }
    },
    "emit-ack": async (b) => {
      try {
        return { responses: await io.timeout(b.timeout).emitWithAck(b.event, ...(b.args || [])), err: "" };
      } catch (e) {
        return { responses: [], err: e.message };
      }
    },
  };

  httpServer.prependListener("request", (req, res) => {
    const m = /^\/ctl\/([a-z-]+)$/.exec(req.url);
    if (!m) return;
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      let status = 200;
      let out;
      try {
        const op = ops[m[1]];
        if (!op) throw new Error("unknown op " + m[1]);
        out = await op(body ? JSON.parse(body) : {});
      } catch (e) {
        status = 500;
        out = { error: String(e && e.stack ? e.stack : e) };
      }
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(out));
    });
  });

  httpServer.listen(0, "127.0.0.1", () => {
    process.stdout.write("READY " + httpServer.address().port + "\n");
  });
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
