"use strict";
// Node Socket.IO clients (socket.io-client 4.8), driven by the Go interop tests through JSON lines.
//
// stdin, one command per line; each gets {"type":"reply","seq":N,...} once done ({"error": msg} on failure):
//   {"seq":1,"cmd":"connect","cid":"c1","url":"http://127.0.0.1:1234/nsp","query":{...},"auth":{...}}
//       replies when connected: {"sid": "..."} (or {"error": ...} on connect_error / 10 s timeout);
//       "transports": ["polling","websocket"] starts over long-polling and upgrades (default: websocket only);
//       with "reconnect":true the socket reconnects by itself after a drop (every 200 ms), as an application's
//       does, and reports each reconnection: {"type":"connect","cid":"c1","sid":"...","recovered":true|false}
//   {"seq":2,"cmd":"answer","cid":"c1","event":"ev","value":<value>}   ack every later "ev" with value
//   {"seq":3,"cmd":"answer","cid":"c1","event":"ev","noAck":true}      never ack "ev" (the default)
//   {"seq":4,"cmd":"disconnect","cid":"c1"}
//   {"seq":5,"cmd":"emit","cid":"c1","event":"ev","args":[...]}
//   {"seq":6,"cmd":"state","cid":"c1"}        -> {"id", "connected", "pid", "offset", "recovered"} (recovery state)
//   {"seq":7,"cmd":"drop","cid":"c1"}         cuts the connection as a network failure would (engine.close())
// stdout, besides replies, every event a client receives, in order:
//   {"type":"event","cid":"c1","event":"ev","args":[...],"withAck":false}
//   {"type":"disconnect","cid":"c1","reason":"io server disconnect"}
// Values keep their types through codec.js. Exits when stdin closes.
const readline = require("readline");
const { io } = require("socket.io-client");
const { enc, dec } = require("./codec");

const clients = new Map(); // cid -> {socket, answers: Map(event -> {value} | {noAck})}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function connect(cmd) {
  return new Promise((resolve, reject) => {
    const socket = io(cmd.url, {
      transports: cmd.transports || ["websocket"],
      forceNew: true,
      reconnection: !!cmd.reconnect,
      reconnectionDelay: 200,
      reconnectionDelayMax: 200,
      randomizationFactor: 0,
      query: cmd.query || {},
      auth: cmd.auth || {},
    });
    const c = { socket, answers: new Map() };
    clients.set(cmd.cid, c);
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error("connect timeout"));
    }, 10000);
    socket.onAny((event, ...args) => {
      const last = args[args.length - 1];
      const withAck = typeof last === "function";
      const plain = withAck ? args.slice(0, -1) : args;
      out({ type: "event", cid: cmd.cid, event, args: enc(plain), withAck });
      if (withAck) {
        const a = c.answers.get(event);
        if (a && !a.noAck) last(a.value);
      }
    });
    socket.on("disconnect", (reason) => out({ type: "disconnect", cid: cmd.cid, reason }));
    let connects = 0;
    socket.on("connect", () => {
      if (connects++ > 0) out({ type: "connect", cid: cmd.cid, sid: socket.id, recovered: socket.recovered });
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve({ sid: socket.id });
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const commands = {
  connect,
  async answer(cmd) {
    const c = clients.get(cmd.cid);
    if (!c) throw new Error("unknown client " + cmd.cid);
    c.answers.set(cmd.event, cmd.noAck ? { noAck: true } : { value: dec(cmd.value) });
    return {};
  },
  async disconnect(cmd) {
    const c = clients.get(cmd.cid);
    if (c) c.socket.disconnect();
    return {};
  },
  async state(cmd) {
    const c = clients.get(cmd.cid);
    if (!c) throw new Error("unknown client " + cmd.cid);
    const s = c.socket;
    return { id: s.id, connected: s.connected, pid: s._pid, offset: s._lastOffset, recovered: s.recovered };
  },
  async drop(cmd) {
    const c = clients.get(cmd.cid);
    if (!c) throw new Error("unknown client " + cmd.cid);
    c.socket.io.engine.close();
    return {};
  },
  async emit(cmd) {
    const c = clients.get(cmd.cid);
    if (!c) throw new Error("unknown client " + cmd.cid);
    c.socket.emit(cmd.event, ...dec(cmd.args || []));
    return {};
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    return out({ type: "reply", seq: -1, error: "bad command: " + err.message });
  }
  try {
    const h = commands[cmd.cmd];
    if (!h) throw new Error("unknown command " + cmd.cmd);
    out({ type: "reply", seq: cmd.seq, ...(await h(cmd)) });
  } catch (err) {
    out({ type: "reply", seq: cmd.seq, error: String((err && err.message) || err) });
  }
});
rl.on("close", () => process.exit(0));
// A malformed packet from a server (an EVENT without data) makes socket.io-client throw from its event dispatch,
// after the onAny listeners ran (they record {"event": null}); keep the other clients alive.
process.on("uncaughtException", (err) => console.error("uncaught exception:", err));
out({ type: "ready" });
