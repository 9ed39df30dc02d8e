"use strict";
// A Node Socket.IO server using @socket.io/redis-streams-adapter, driven by the Go interop tests.
//
// Configuration: environment variables, or --name=value arguments (same names, lower case, "_" or "-"):
//   REDIS_URL         standalone Redis, e.g. redis://127.0.0.1:6379
//   REDIS_CLUSTER     cluster nodes instead, e.g. 127.0.0.1:7000,127.0.0.1:7001
//   PORT              listening port (default 0: any free port)
//   STREAM_NAME, CHANNEL_PREFIX, STREAM_COUNT, USE_SHARDED_PUBSUB (1/true), READ_COUNT, BLOCK_TIME_IN_MS, MAX_LEN
//   NAMESPACES        extra namespaces to create at start, comma separated ("/" always exists)
//   SESSION_KEY_PREFIX  the adapter's sessionKeyPrefix
//   RECOVERY_MS       enables connection state recovery with that maxDisconnectionDuration (default: disabled)
//
// Prints "READY <port>" on stdout once the server listens and Redis is connected. Exits when stdin closes.
//
// Control API, on the same port: POST /ctl/<op> with a JSON body, JSON answer ({"error": msg} with status 500 on
// failure). Values keep their types through codec.js ({"$bin": base64}, {"$date": iso}). Broadcast targets are
// {nsp, to: [rooms], except: [rooms], local, volatile, compress, timeout}.
//   emit {event, args}                 -> {}                          io.of(nsp).to().except().emit()
//   emit-ack {event, args, timeout}    -> {err, responses}            .timeout(t).emit(..., cb)
//   join|leave {rooms}                 -> {}                          socketsJoin / socketsLeave
//   disconnect {close}                 -> {}                          disconnectSockets
//   fetch {timeout?}                   -> {sockets: [{id, handshake, rooms, data}]}
//   remote {id, op: emit|emit-ack|join|leave|disconnect, event, args, rooms, close, timeout}
//                                      -> {found, err, response}      operations on a fetched (remote) socket
//   sse {event, args}                  -> {}                          serverSideEmit
//   sse-ack {event, args}              -> {err, responses}            serverSideEmit with an ack
//   sse-reply {event, value | noAck}   -> {}                          how this server acks a serverSideEmit
//   next-event {event, timeout}        -> {event, args, withAck} | {timeout: true}   serverSideEmit received here
//                                                                     (takes it out of the record)
//   events {clear?}                    -> {events: [{event, args, withAck}]}          the record, for nsp
//   count {}                           -> {count}                     adapter.serverCount()
//   sockets {}                         -> {sockets: [...]}            local sockets of nsp (with "recovered")
//   socket {id, rooms?, leave?, data?} -> {found, rooms}              join/leave/set data on a local socket
//   of {}                              -> {}                          create namespace nsp
const http = require("http");
const { Server } = require("socket.io");
const { createClient, createCluster } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { enc, dec } = require("./codec");

function config() {
  const c = { ...process.env };
  for (const a of process.argv.slice(2)) {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    if (m) c[m[1].toUpperCase().replace(/-/g, "_")] = m[2];
  }
  return c;
}

const cfg = config();
const bool = (v) => v === "1" || v === "true";
const int = (v) => (v === undefined || v === "" ? undefined : parseInt(v, 10));

function adapterOptions() {
  const o = {};
  if (cfg.STREAM_NAME) o.streamName = cfg.STREAM_NAME;
  if (cfg.CHANNEL_PREFIX) o.channelPrefix = cfg.CHANNEL_PREFIX;
  if (int(cfg.STREAM_COUNT)) o.streamCount = int(cfg.STREAM_COUNT);
  if (bool(cfg.USE_SHARDED_PUBSUB)) o.useShardedPubSub = true;
  if (int(cfg.READ_COUNT)) o.readCount = int(cfg.READ_COUNT);
  if (int(cfg.BLOCK_TIME_IN_MS)) o.blockTimeInMs = int(cfg.BLOCK_TIME_IN_MS);
  if (int(cfg.MAX_LEN)) o.maxLen = int(cfg.MAX_LEN);
  if (cfg.SESSION_KEY_PREFIX) o.sessionKeyPrefix = cfg.SESSION_KEY_PREFIX;
  return o;
}

async function redisClient() {
  let client;
  if (cfg.REDIS_CLUSTER) {
    client = createCluster({
      rootNodes: cfg.REDIS_CLUSTER.split(",").map((a) => ({ url: "redis://" + a.trim() })),
    });
  } else {
    client = createClient({ url: cfg.REDIS_URL || "redis://127.0.0.1:6379" });
  }
  client.on("error", (err) => console.error("redis error:", err.message));
  await client.connect();
  return client;
}

// serverSideEmit events received, per namespace, and long-poll waiters.
const received = new Map(); // nsp -> [{event, args, withAck}]
const waiters = new Set(); // {nsp, event, resolve}
const sseReplies = new Map(); // nsp + "\0" + event -> {value} | {noAck: true}

function record(nsp, event, args, withAck) {
  for (const w of waiters) {
    if (w.nsp === nsp && w.event === event) {
      waiters.delete(w);
      w.resolve({ event, args: enc(args), withAck });
      return;
    }
  }
  if (!received.has(nsp)) received.set(nsp, []);
  received.get(nsp).push({ event, args: enc(args), withAck });
}

function nextEvent(nsp, event, timeout) {
  const list = received.get(nsp) || [];
  const i = list.findIndex((e) => e.event === event);
  if (i >= 0) return Promise.resolve(list.splice(i, 1)[0]);
  return new Promise((resolve) => {
    const w = { nsp, event, resolve };
    waiters.add(w);
    setTimeout(() => {
      if (waiters.delete(w)) resolve({ timeout: true });
    }, timeout || 10000);
  });
}

function setupNamespace(io, name) {
  const nsp = io.of(name);
  if (nsp.__interop) return nsp;
  nsp.__interop = true;
  const orig = nsp._onServerSideEmit.bind(nsp);
  nsp._onServerSideEmit = (args) => {
    const [event, ...rest] = args;
    const last = rest[rest.length - 1];
    const withAck = typeof last === "function";
    const plain = withAck ? rest.slice(0, -1) : rest;
    record(name, event, plain, withAck);
    if (withAck) {
      const reply = sseReplies.get(name + "\0" + event);
      if (reply && !reply.noAck) last(reply.value);
    }
    orig(args);
  };
  nsp.on("connection", (socket) => {
    const q = socket.handshake.query;
    if (typeof q.rooms === "string" && q.rooms !== "") socket.join(q.rooms.split(","));
    if (socket.handshake.auth && socket.handshake.auth.data !== undefined) {
      socket.data = dec(socket.handshake.auth.data);
    }
  });
  return nsp;
}

function target(io, b) {
  let op = setupNamespace(io, b.nsp || "/");
  if (b.to && b.to.length) op = op.to(b.to);
  if (b.except && b.except.length) op = op.except(b.except);
  if (b.local) op = op.local;
  if (b.volatile) op = op.volatile;
  if (b.compress !== undefined) op = op.compress(b.compress);
  return op;
}

function details(s) {
  return {
    id: s.id,
    handshake: enc(s.handshake),
    rooms: [...s.rooms],
    data: enc(s.data),
    recovered: s.recovered, // undefined (so absent) for a RemoteSocket
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(what + ": no answer within " + ms + "ms")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

const handlers = {
  async emit(io, b) {
    target(io, b).emit(b.event, ...dec(b.args || []));
    return {};
  },
  async "emit-ack"(io, b) {
    return new Promise((resolve) => {
      target(io, b)
        .timeout(b.timeout)
        .emit(b.event, ...dec(b.args || []), (err, responses) => {
          resolve({ err: err ? err.message : null, responses: enc(responses) });
        });
    });
  },
  async join(io, b) {
    target(io, b).socketsJoin(b.rooms);
    return {};
  },
  async leave(io, b) {
    target(io, b).socketsLeave(b.rooms);
    return {};
  },
  async disconnect(io, b) {
    target(io, b).disconnectSockets(!!b.close);
    return {};
  },
  async fetch(io, b) {
    let op = target(io, b);
    if (b.timeout) op = op.timeout(b.timeout);
    try {
      const sockets = await op.fetchSockets();
      return { sockets: sockets.map(details) };
    } catch (err) {
      return { err: err.message };
    }
  },
  async remote(io, b) {
    const [s] = await setupNamespace(io, b.nsp || "/").in(b.id).fetchSockets();
    if (!s) return { found: false };
    switch (b.op) {
      case "emit":
        s.emit(b.event, ...dec(b.args || []));
        return { found: true };
      case "emit-ack":
        try {
          const response = await s.timeout(b.timeout).emitWithAck(b.event, ...dec(b.args || []));
          return { found: true, err: null, response: enc(response) };
        } catch (err) {
          return { found: true, err: err.message };
        }
      case "join":
        s.join(b.rooms);
        return { found: true };
      case "leave":
        s.leave(b.rooms[0]);
        return { found: true };
      case "disconnect":
        s.disconnect(!!b.close);
        return { found: true };
    }
    throw new Error("unknown remote op " + b.op);
  },
  async sse(io, b) {
    setupNamespace(io, b.nsp || "/").serverSideEmit(b.event, ...dec(b.args || []));
    return {};
  },
  async "sse-ack"(io, b) {
    return new Promise((resolve) => {
      setupNamespace(io, b.nsp || "/").serverSideEmit(b.event, ...dec(b.args || []), (err, responses) => {
        resolve({ err: err ? err.message : null, responses: enc(responses) });
      });
    });
  },
  async "sse-reply"(io, b) {
    sseReplies.set((b.nsp || "/") + "\0" + b.event, b.noAck ? { noAck: true } : { value: dec(b.value) });
    return {};
  },
  async "next-event"(io, b) {
    setupNamespace(io, b.nsp || "/");
    return nextEvent(b.nsp || "/", b.event, b.timeout);
  },
  async events(io, b) {
    const nsp = b.nsp || "/";
    const list = received.get(nsp) || [];
    if (b.clear) received.delete(nsp);
    return { events: list };
  },
  async count(io, b) {
    return { count: await setupNamespace(io, b.nsp || "/").adapter.serverCount() };
  },
  async sockets(io, b) {
    return { sockets: [...setupNamespace(io, b.nsp || "/").sockets.values()].map(details) };
  },
  async socket(io, b) {
    const s = setupNamespace(io, b.nsp || "/").sockets.get(b.id);
    if (!s) return { found: false };
    if (b.rooms) s.join(b.rooms);
    if (b.leave) for (const r of b.leave) s.leave(r);
    if (b.data !== undefined) s.data = dec(b.data);
    return { found: true, rooms: [...s.rooms] };
  },
  async of(io, b) {
    setupNamespace(io, b.nsp);
    return {};
  },
};

async function main() {
  const client = await redisClient();
  const httpServer = http.createServer();
  const opts = { adapter: createAdapter(client, adapterOptions()) };
  if (int(cfg.RECOVERY_MS)) opts.connectionStateRecovery = { maxDisconnectionDuration: int(cfg.RECOVERY_MS) };
  const io = new Server(httpServer, opts);
  setupNamespace(io, "/");
  for (const n of (cfg.NAMESPACES || "").split(",")) if (n) setupNamespace(io, n);

  httpServer.on("request", (req, res) => {
    if (!req.url.startsWith("/ctl/")) return; // socket.io's own listener answers /socket.io/
    const op = req.url.slice(5).split("?")[0];
    let body = "";
    req.setEncoding("utf8"); // decodes across chunk boundaries (body += buffer would split UTF-8 sequences)
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      let status = 200;
      let out;
      try {
        const h = handlers[op];
        if (!h) throw new Error("unknown control operation " + op);
        out = await withTimeout(h(io, body ? JSON.parse(body) : {}), 30000, op);
      } catch (err) {
        status = 500;
        out = { error: String((err && err.stack) || err) };
      }
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(out));
    });
  });

  httpServer.listen(int(cfg.PORT) || 0, "127.0.0.1", () => {
    process.stdout.write("READY " + httpServer.address().port + "\n");
  });

  const exit = () => process.exit(0);
  process.stdin.on("end", exit);
  process.stdin.on("error", exit);
  process.stdin.resume();
  process.on("SIGTERM", exit);
}

process.on("unhandledRejection", (err) => console.error("unhandled rejection:", err));
main().catch((err) => {
  console.error(err);
  process.exit(1);
});
