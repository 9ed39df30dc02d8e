"use strict";
// Captures what @socket.io/redis-streams-adapter 0.3.1 really writes to Redis, for the Go codec's golden tests
// (internal/wire/testdata). Run through the Go harness, which starts a private redis-server:
//
//   INTEROP_CAPTURE=1 go test ./interop -run TestCaptureGolden -v
//
// or by hand: REDIS_URL=redis://127.0.0.1:PORT OUT_DIR=../../internal/wire/testdata node capture.js
//
// Two Socket.IO servers (A with connection state recovery, B without) share one Redis; each has one client.
// Every step below drives one feature; the stream entries it added (XRANGE) and the PUB/SUB messages it caused
// (a raw PSUBSCRIBE connection, which NUMSUB does not count) are written as JSON lines, labelled with the step:
//   node-stream.jsonl   {"name", "type", "stream", "id", "fields": {uid, nsp, type, data}}
//   node-pubsub.jsonl   {"name", "type", "channel", "payload": base64 of the msgpack payload}
// The adapter only writes types 3-6 to the stream; for the other types node-stream.jsonl also holds the fields
// the adapter's own encode() produces for each captured PUB/SUB message (names ending in "/encode"): the stream
// form that 0.2.x servers and the emitter package write.
const fs = require("fs");
const path = require("path");
const http = require("http");
const { Server } = require("socket.io");
const { io: ioc } = require("socket.io-client");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-streams-adapter");
const { decode } = require("@msgpack/msgpack");

const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";
const OUT_DIR = process.env.OUT_DIR || path.join(__dirname, "..", "..", "internal", "wire", "testdata");
const PREFIX = process.env.PREFIX || "capture";

const wait = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, cond, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await wait(10);
  }
}

async function startServer(name, csr) {
  const client = createClient({ url: REDIS_URL });
  await client.connect();
  const httpServer = http.createServer();
  const opts = {
    adapter: createAdapter(client, { streamName: PREFIX, channelPrefix: PREFIX, sessionKeyPrefix: PREFIX + ":s:" }),
  };
  if (csr) opts.connectionStateRecovery = { maxDisconnectionDuration: 5000 };
  const io = new Server(httpServer, opts);
  await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));
  const connected = new Promise((r) => io.once("connection", r));
  const socket = ioc(`http://127.0.0.1:${httpServer.address().port}/`, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    query: { k: "v" },
    auth: { token: name },
  });
  const serverSocket = await connected;
  await new Promise((r) => (socket.connected ? r() : socket.once("connect", r)));
  return { name, io, client, httpServer, socket, serverSocket };
}

async function main() {
  const A = await startServer("A", true);
  const B = await startServer("B", false);
  const redis = createClient({ url: REDIS_URL });
  await redis.connect();

  const pubsub = []; // {channel, payload}
  const sniffer = redis.duplicate();
  await sniffer.connect();
  await sniffer.pSubscribe(PREFIX + "#*", (payload, channel) => pubsub.push({ channel: channel.toString(), payload }), true);

  await until("2 servers", async () => (await A.io.of("/").adapter.serverCount()) === 2);
  // The readers start at "$": wait until both follow the stream.
  const warm = [];
  B.socket.on("warmup", () => warm.push("B"));
  for (let i = 0; !warm.length; i++) {
    if (i > 200) throw new Error("reader never started");
    A.io.emit("warmup", i);
    await wait(50);
  }
  B.socket.off("warmup");

  const stream = [];
  const pubsubOut = [];
  let lastId = "0-0";
  let seen = 0;
  const pubsubCount = () => pubsub.length;

  // step runs f, then waits for the given number of new stream entries and PUB/SUB messages, and labels them.
  async function step(name, f, { entries = 0, messages = 0 } = {}) {
    const before = pubsubCount();
    await f();
    let fresh = [];
    await until(`${name}: ${entries} stream entries`, async () => {
      const list = await redis.xRange(PREFIX, lastId === "0-0" ? "-" : "(" + lastId, "+");
      fresh = list.filter((e) => e.message.nsp && !(e.message.type === "3" && e.message.data.includes("warmup")));
      return fresh.length >= entries;
    });
    await until(`${name}: ${messages} PUB/SUB messages`, async () => pubsubCount() - before >= messages);
    await wait(100); // nothing more is expected: anything extra would show up in the output
    const list = await redis.xRange(PREFIX, lastId === "0-0" ? "-" : "(" + lastId, "+");
    for (const e of list) {
      lastId = e.id;
      if (e.message.type === "3" && e.message.data.includes("warmup")) continue;
      stream.push({ name, type: parseInt(e.message.type, 10), stream: PREFIX, id: e.id, fields: { ...e.message } });
    }
    for (; seen < pubsub.length; seen++) {
      const m = pubsub[seen];
      const msg = decode(m.payload);
      pubsubOut.push({ name, type: msg.type, channel: m.channel, payload: Buffer.from(m.payload).toString("base64") });
      // The stream form of the same message, by the adapter's own encoder.
      stream.push({
        name: name + "/encode",
        type: msg.type,
        stream: PREFIX,
        id: "0-" + seen,
        fields: A.io.of("/").adapter.encode(msg),
      });
    }
  }

  const a = A.io;
  const sa = A.serverSocket;
  const sb = B.serverSocket;
  sb.join(["room1", "room5"]);
  sb.data = { user: 42, tags: ["x"] };

  await step("broadcast", () => a.emit("plain", 1, "2", { a: [true, null] }, -1.5, "ü€😀\u2028<>&"), { entries: 1 });
  await step("broadcast-binary", () => a.emit("bin", Buffer.from([1, 2, 3]), { nested: Buffer.from([4]) }), {
    entries: 1,
  });
  await step(
    "broadcast-binary-several",
    () => a.emit("bins", [Buffer.from([5]), Buffer.from([6, 7])], new Uint8Array([8]), Buffer.alloc(0)),
    { entries: 1 }
  );
  await step("broadcast-rooms", () => a.to(["room1", "room2"]).except("room3").emit("r", 1), { entries: 1 });
  await step("broadcast-flags", () => a.volatile.compress(false).emit("v"), { entries: 1 });
  await step("broadcast-date", () => a.emit("d", new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 120))), { entries: 1 });
  await step("broadcast-date-binary", () => a.emit("db", new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 120)), Buffer.from([1])), {
    entries: 1,
  });
  await step("broadcast-numbers", () => a.emit("n", 0, -0, 255, 65536, 2 ** 32, 2 ** 53, 2 ** 60, -(2 ** 31), 0.1, 1e300), {
    entries: 1,
  });
  await step("broadcast-numbers-binary", () => a.emit("nb", 255, 2 ** 32, 2 ** 60, -(2 ** 31), 0.1, NaN, Buffer.from([1])), {
    entries: 1,
  });
  await step("socket-broadcast", () => sa.broadcast.emit("sb", 1), { entries: 1 });
  await step("socket-emit", () => sa.emit("se", 1), { entries: 1 }); // through the adapter: CSR is on for A
  await step("socket-emit-ack", () => sa.timeout(1000).emit("sea", 1, () => {}), { entries: 1 });
  await step("sockets-join", () => a.in("room1").socketsJoin(["room4", "room5"]), { entries: 1 });
  await step("sockets-leave", () => a.socketsLeave("room4"), { entries: 1 });
  await step("disconnect-sockets", () => a.in("nobody").disconnectSockets(true), { entries: 1 });
  await step("disconnect-sockets-no-close", () => a.in("nobody").disconnectSockets(), { entries: 1 });

  await step("fetch-sockets", () => a.in("room1").fetchSockets(), { messages: 2 });
  sb.data = { user: 42, bin: Buffer.from([9]) };
  await step("fetch-sockets-binary", () => a.in("room1").fetchSockets(), { messages: 2 });
  sb.data = undefined;
  await step("fetch-sockets-timeout", () => a.timeout(1234).fetchSockets(), { messages: 2 });

  B.io.on("sse", () => {});
  await step("server-side-emit", () => a.serverSideEmit("sse", 1, { x: 2 }), { messages: 1 });
  await step("server-side-emit-binary", () => a.serverSideEmit("sse", Buffer.from([1, 2]), { b: Buffer.from([3]) }), {
    messages: 1,
  });
  B.io.on("sseack", (n, cb) => cb({ got: n }));
  await step("server-side-emit-ack", () => new Promise((r) => a.serverSideEmit("sseack", 7, r)), { messages: 2 });
  B.io.on("sseackb", (n, cb) => cb(Buffer.from([9])));
  await step(
    "server-side-emit-ack-binary",
    () => new Promise((r) => a.serverSideEmit("sseackb", Buffer.from([7]), r)),
    { messages: 2 }
  );

  B.socket.on("ackme", (n, cb) => cb("pong"));
  await step("broadcast-ack", () => new Promise((r) => a.timeout(1000).to("room1").emit("ackme", 5, r)), {
    messages: 3,
  });
  B.socket.on("ackmeb", (n, cb) => cb(Buffer.from([10])));
  await step(
    "broadcast-ack-binary",
    () => new Promise((r) => a.timeout(1000).to("room1").emit("ackmeb", Buffer.from([5]), r)),
    { messages: 3 }
  );
  B.socket.on("single", (cb) => cb({ one: 1 }));
  await step(
    "remote-socket-emit-ack",
    async () => {
      const [s] = await a.in(sb.id).fetchSockets();
      await s.timeout(1000).emitWithAck("single");
    },
    { messages: 5 }
  );

  fs.mkdirSync(OUT_DIR, { recursive: true });
  const lines = (l) => l.map((x) => JSON.stringify(x)).join("\n") + "\n";
  fs.writeFileSync(path.join(OUT_DIR, "node-stream.jsonl"), lines(stream));
  fs.writeFileSync(path.join(OUT_DIR, "node-pubsub.jsonl"), lines(pubsubOut));
  console.log(`captured ${stream.length} stream entries and ${pubsubOut.length} PUB/SUB messages in ${OUT_DIR}`);

  A.socket.close();
  B.socket.close();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
