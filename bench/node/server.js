"use strict";
// The Node benchmark server: socket.io + @socket.io/redis-streams-adapter 0.3.1 + node-redis, default options,
// with the packages installed in ../../interop/node (its package-lock.json). Driven over HTTP by the Go harness
// (bench/), with the same control API as bench/server.go:
//   POST /ctl/ladder   {rate, dur_ms, warm_ms, base}  -> {sent, sent_warm, window_s}   paced io.emit("ev", {t, s, pad})
//   POST /ctl/publish  {emitters, dur_ms}             -> {emits}                        N concurrent awaited broadcasts
//   POST /ctl/requests {kind, rate, dur_ms}           -> {rtt_us, responses, errors}    fetchSockets / serverSideEmitWithAck
//   GET  /ctl/count                                   -> {count}
//   POST /ctl/sockets                                 -> {sockets}
//   POST /ctl/stats                                   -> {supported: false}             (the Node adapter counts no loss)
//   POST /ctl/join     {rooms}                        -> {sockets}                      each local socket joins that many rooms
//   POST /ctl/emit     {n, base}                      -> {sent}                         n io.emit("ev", {t, s, pad}) at once
// Usage: node server.js --redis-url=redis://127.0.0.1:PORT [--recovery] (connection state recovery, defaults)
// Prints "READY <port>" once listening and exits when stdin closes.
const path = require("path");
const http = require("http");
const { createRequire } = require("module");

const req = createRequire(path.resolve(__dirname, "../../interop/node/package.json"));
const { Server } = req("socket.io");
const { createClient } = req("redis");
const { createAdapter } = req("@socket.io/redis-streams-adapter");

let redisURL = process.env.REDIS_URL || "";
let recovery = false;
for (const a of process.argv.slice(2)) {
  const m = /^--redis-url=(.*)$/.exec(a);
  if (m) redisURL = m[1];
  if (a === "--recovery") recovery = true;
}

const pad = "x".repeat(150);
// Wall clock in microseconds, as the Go side's time.Now().UnixMicro(): performance.now() (monotonic, sub-µs) plus an
// offset taken at the instant Date.now() ticks to the next millisecond, so that the two clocks agree to a few µs
// (performance.timeOrigin alone can be off by milliseconds). Recalibrated before each ladder step.
let clockOffset = 0;
function calibrate() {
  const first = Date.now();
  let now;
  while ((now = Date.now()) === first); // spins at most 1 ms
  clockOffset = now * 1000 - performance.now() * 1000;
}
calibrate();
const nowMicros = () => Math.round(performance.now() * 1000 + clockOffset);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function ladder(io, b) {
  calibrate();
  const durMs = b.dur_ms;
  const warmMs = b.warm_ms || 0;
  const start = performance.now();
  let sent = 0;
  let sentWarm = 0;
  for (;;) {
    const el = performance.now() - start;
    if (el >= durMs) break;
    const due = Math.floor((b.rate * el) / 1000);
    while (sent < due) {
      io.emit("ev", { t: nowMicros(), s: b.base + sent, pad });
      sent++;
      if (performance.now() - start >= warmMs) sentWarm++;
    }
    await sleep(1);
  }
  return { sent, sent_warm: sentWarm, window_s: (durMs - warmMs) / 1000 };
}

// Closed loop: each emitter awaits the adapter's broadcast (it resolves once the XADD is acknowledged), as io.emit
// would do without waiting.
async function publish(io, b) {
  const adapter = io.of("/").adapter;
  const deadline = performance.now() + b.dur_ms;
  let emits = 0;
  const one = async (i) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const packet = { type: 2, data: ["ev", { t: nowMicros(), s: i * 4294967296 + n, pad }], nsp: "/" };
      await adapter.broadcast(packet, { rooms: new Set(), except: new Set(), flags: {} });
      emits++;
    }
  };
  await Promise.all(Array.from({ length: b.emitters }, (_, i) => one(i)));
  return { emits };
}

async function requests(io, b) {
  const n = Math.floor((b.rate * b.dur_ms) / 1000);
  const interval = 1000 / b.rate;
  const rtts = [];
  const responses = [];
  let errors = 0;
  const calls = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await sleep(wait);
    const t0 = performance.now();
    const p = b.kind === "fetch" ? io.fetchSockets() : io.serverSideEmitWithAck("bench-ping");
    calls.push(
      p.then(
        (list) => {
          rtts.push(Math.round((performance.now() - t0) * 1000));
          responses.push(list.length);
        },
        () => errors++,
      ),
    );
  }
  await Promise.all(calls);
  return { rtt_us: rtts, responses, errors };
}

async function main() {
  const client = createClient({ url: redisURL });
  client.on("error", (err) => console.error("redis error:", err.message));
  await client.connect();
  const httpServer = http.createServer();
  const opts = { adapter: createAdapter(client) };
  if (recovery) opts.connectionStateRecovery = {}; // Socket.IO's defaults: 2 minutes, middlewares skipped
  const io = new Server(httpServer, opts);
  io.on("bench-ping", (cb) => cb("pong"));

  const handlers = {
    ladder: (b) => ladder(io, b),
    publish: (b) => publish(io, b),
    requests: (b) => requests(io, b),
    count: async () => ({ count: await io.of("/").adapter.serverCount() }),
    sockets: async () => ({ sockets: io.of("/").sockets.size }),
    stats: async () => ({ supported: false }),
    emit: async (b) => {
      for (let i = 0; i < b.n; i++) io.emit("ev", { t: nowMicros(), s: b.base + i, pad });
      return { sent: b.n };
    },
    join: async (b) => {
      let n = 0;
      for (const s of io.of("/").sockets.values()) {
        for (let i = 0; i < b.rooms; i++) s.join("room-" + i);
        n++;
      }
      return { sockets: n };
    },
  };
  httpServer.on("request", (rq, res) => {
    if (!rq.url.startsWith("/ctl/")) return; // socket.io answers /socket.io/
    const op = rq.url.slice(5).split("?")[0];
    let body = "";
    rq.setEncoding("utf8");
    rq.on("data", (c) => (body += c));
    rq.on("end", async () => {
      let status = 200;
      let out;
      try {
        const h = handlers[op];
        if (!h) throw new Error("unknown control operation " + op);
        out = await h(body ? JSON.parse(body) : {});
      } catch (err) {
        status = 500;
        out = { error: String((err && err.stack) || err) };
      }
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(out));
    });
  });
  httpServer.listen(0, "127.0.0.1", () => {
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
