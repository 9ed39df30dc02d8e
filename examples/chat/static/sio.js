// A tiny Socket.IO client: Engine.IO v4 over WebSocket, Socket.IO protocol v5, main namespace "/", text packets
// only, no acknowledgements. Enough for the chat demo; use the official socket.io-client in a real application.
//
//   const sock = new MiniSocket();            // same host as the page
//   sock.on("connect", () => sock.emit("join", {room: "general"}));
//   sock.on("chat", (msg) => ...);
//
// Engine.IO packets: 0 open {sid,pingInterval,pingTimeout}, 1 close, 2 ping, 3 pong, 4 message.
// Socket.IO packets (inside an Engine.IO message): 0 CONNECT, 1 DISCONNECT, 2 EVENT [name, ...args],
// 4 CONNECT_ERROR.
"use strict";

class MiniSocket {
  constructor(url) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = url || `${proto}//${location.host}/socket.io/?EIO=4&transport=websocket`;
    this.handlers = {};
    this.connected = false;
    this.id = null;
    this.attempts = 0;
    this.open();
  }

  on(event, fn) {
    (this.handlers[event] = this.handlers[event] || []).push(fn);
    return this;
  }

  fire(event, ...args) {
    for (const fn of this.handlers[event] || []) {
      try { fn(...args); } catch (e) { console.error(e); }
    }
  }

  // emit sends an event to the server; it returns false (and sends nothing) while disconnected.
  emit(event, ...args) {
    if (!this.connected) return false;
    this.ws.send("42" + JSON.stringify([event, ...args]));
    return true;
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (e) => { if (typeof e.data === "string") this.onEnginePacket(e.data); };
    ws.onclose = () => this.onClose();
    ws.onerror = () => {}; // onclose follows
  }

  onEnginePacket(p) {
    switch (p[0]) {
      case "0": { // open: start the Socket.IO session on "/"
        const hs = JSON.parse(p.slice(1));
        this.heartbeatMs = hs.pingInterval + hs.pingTimeout;
        this.heartbeat();
        this.ws.send("40");
        break;
      }
      case "2": this.heartbeat(); this.ws.send("3"); break; // ping -> pong
      case "1": this.ws.close(); break;
      case "4": this.onSocketPacket(p.slice(1)); break;
    }
  }

  onSocketPacket(p) {
    let rest = p.slice(1);
    if (rest[0] === "/") { // a namespace other than "/" (not used here)
      const i = rest.indexOf(",");
      rest = i < 0 ? "" : rest.slice(i + 1);
    }
    rest = rest.replace(/^\d+/, ""); // an acknowledgement id: not supported, ignored
    switch (p[0]) {
      case "0": // CONNECT
        this.connected = true;
        this.attempts = 0;
        this.id = rest ? JSON.parse(rest).sid : null;
        this.fire("connect");
        break;
      case "1": // DISCONNECT by the server
        this.ws.close();
        break;
      case "2": { // EVENT
        const [event, ...args] = JSON.parse(rest);
        this.fire(event, ...args);
        break;
      }
      case "4": // CONNECT_ERROR
        this.fire("connect_error", rest ? JSON.parse(rest) : {});
        break;
    }
  }

  // heartbeat closes the connection if the server stops pinging.
  heartbeat() {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => this.ws.close(), this.heartbeatMs || 45000);
  }

  onClose() {
    clearTimeout(this.heartbeatTimer);
    const was = this.connected;
    this.connected = false;
    this.id = null;
    if (was) this.fire("disconnect");
    const delay = Math.min(5000, 500 * 2 ** this.attempts++);
    this.fire("reconnecting", delay);
    setTimeout(() => this.open(), delay);
  }
}
