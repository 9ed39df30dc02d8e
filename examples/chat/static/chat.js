"use strict";

// The chat page. It talks to the server that served it through the official Socket.IO client
// (vendor/socket.io-client), with connection state recovery: after a disconnection, the server replays what the
// page missed, and the page marks those messages. The page keeps each room's history in sessionStorage, so a
// reload or a server restart does not wipe it.

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const me = location.host; // the server this page talks to
$("server").textContent = me;
document.title = `Chat – ${me}`;

// Name: ?name=… wins, then the last one used, then a random guest name.
const nameInput = $("name");
nameInput.value = params.get("name") || localStorage.getItem("chat.name") || `guest-${Math.floor(Math.random() * 900 + 100)}`;
const roomSelect = $("room");
if (params.get("room")) {
  const r = params.get("room");
  if (![...roomSelect.options].some((o) => o.value === r)) roomSelect.add(new Option(`#${r}`, r));
  roomSelect.value = r;
}

const sock = io({ reconnectionDelayMax: 2000 });
let currentRoom = null;
let live = false;       // between "connect" and "disconnect"; events that arrive otherwise were replayed
let everConnected = false;
let missedCount = 0;

// --- history (per tab, per room) ---------------------------------------------
const historyMax = 200;
const historyKey = (room) => `chat.history.${room}`;
function loadHistory(room) {
  try { return JSON.parse(sessionStorage.getItem(historyKey(room))) || []; } catch { return []; }
}
function remember(room, entry) {
  const h = loadHistory(room);
  h.push(entry);
  sessionStorage.setItem(historyKey(room), JSON.stringify(h.slice(-historyMax)));
}
const seen = new Set(); // message ids on the page: a replayed message is never shown twice

// --- rendering ----------------------------------------------------------------
function setStatus(text, on) {
  $("status").textContent = text;
  $("dot").classList.toggle("on", on);
  $("sendBtn").disabled = !on;
}

function hhmmss(ts) {
  return new Date(ts || Date.now()).toLocaleTimeString([], { hour12: false });
}

function addLine(kind, parts) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const li = document.createElement("li");
  li.className = kind;
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = text;
    li.append(span);
  }
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
  return li;
}

function badge(li, cls, text, title) {
  const b = li.appendChild(document.createElement("span"));
  b.className = cls;
  b.textContent = text;
  if (title) b.title = title;
}

function viaBadge(li, server) {
  badge(li, server === me ? "via" : "via remote", server === me ? `via ${server} (this server)` : `via ${server}`,
    "the server this message was sent through");
}

// showEntry renders a stored or received entry: {type: "chat"|"system", id, sid, name, text, server, ts, missed}.
function showEntry(e, fromHistory) {
  if (e.id) {
    if (seen.has(e.id)) return false;
    seen.add(e.id);
  }
  let li;
  if (e.type === "chat") {
    li = addLine(e.sid === sock.id || e.mine ? "mine" : "", [["time", hhmmss(e.ts)], ["name", e.name], [null, e.text]]);
    li.dataset.id = e.id;
  } else {
    li = addLine("system", [["time", hhmmss(e.ts)], [null, e.text]]);
  }
  li.dataset.server = e.server;
  viaBadge(li, e.server);
  if (e.missed) {
    li.classList.add("missed");
    badge(li, "tag", "missed", "sent while this page was disconnected; recovered on reconnection");
  }
  if (fromHistory) li.classList.add("history");
  return true;
}

function showRoom(room, name, server) {
  $("messages").textContent = "";
  seen.clear();
  for (const e of loadHistory(room)) showEntry(e, true);
  addLine("system", [["time", hhmmss()], [null, `— you are in #${room} as ${name}, on ${server} —`]]);
}

function receive(type, m) {
  const e = { type, ...m, missed: !live && sock.recovered, mine: type === "chat" && m.sid === sock.id };
  if (e.missed) missedCount++;
  if (showEntry(e, false) && m.room) remember(m.room, e);
}

// --- socket events --------------------------------------------------------------
function join() {
  const name = nameInput.value.trim();
  localStorage.setItem("chat.name", name);
  sock.emit("join", { name, room: roomSelect.value });
}

sock.on("connect", () => {
  // Replayed events (if any) were delivered just before this "connect".
  if (everConnected) {
    const text = sock.recovered
      ? `— reconnected; session recovered, ${missedCount} missed message(s) replayed —`
      : "— reconnected with a new session; messages sent meanwhile could not be recovered —";
    const li = addLine("system", [["time", hhmmss()], [null, text]]);
    li.classList.add(sock.recovered ? "recovered" : "not-recovered");
  }
  live = true;
  everConnected = true;
  missedCount = 0;
  setStatus(`connected (${sock.id})${sock.recovered ? ", recovered" : ""}`, true);
  join();
  refreshStats();
});
sock.on("disconnect", (reason) => {
  live = false;
  setStatus(`disconnected (${reason})`, false);
});
sock.io.on("reconnect_attempt", (n) => setStatus(`reconnecting (attempt ${n})…`, false));
sock.on("joined", (j) => {
  if (j.room !== currentRoom) {
    currentRoom = j.room;
    showRoom(j.room, j.name, j.server);
  }
  $("text").focus();
  refreshStats();
});
sock.on("chat", (m) => receive("chat", m));
sock.on("system", (m) => { receive("system", m); refreshStats(); });
sock.on("notice", (m) => addLine("system", [["time", hhmmss()], [null, `⚠ ${m.text}`]]));

roomSelect.addEventListener("change", join);
nameInput.addEventListener("change", join);
$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !sock.connected) return;
  sock.emit("chat", { name: nameInput.value.trim(), room: currentRoom, text });
  $("text").value = "";
});

// --- cluster view: servers and users of the whole cluster (GET /api/stats) ------------------
let statsBusy = false;
async function refreshStats() {
  if (statsBusy) return;
  statsBusy = true;
  try {
    const res = await fetch("/api/stats", { cache: "no-store" });
    const st = await res.json();
    $("servers").textContent = st.servers;
    $("users").textContent = st.users;
    $("statsInfo").textContent = st.error ? `error: ${st.error}` : `updated ${hhmmss()} by ${st.server}`;
    const members = $("members");
    members.textContent = "";
    for (const m of st.members) {
      const li = members.appendChild(document.createElement("li"));
      li.append(m.name || "(joining)");
      const room = li.appendChild(document.createElement("span"));
      room.className = "room";
      room.textContent = m.room ? `#${m.room}` : "";
      const via = li.appendChild(document.createElement("span"));
      via.className = m.server === me ? "via" : "via remote";
      via.textContent = m.server || "?";
    }
    const peers = $("peers");
    peers.textContent = "";
    for (const url of st.peers || []) {
      const li = peers.appendChild(document.createElement("li"));
      const a = li.appendChild(document.createElement("a"));
      a.href = url;
      a.target = "_blank";
      a.textContent = url;
      if (new URL(url).host === me) li.append(" (this page)");
    }
  } catch (e) {
    $("statsInfo").textContent = `stats unavailable: ${e}`;
  } finally {
    statsBusy = false;
  }
}
setInterval(refreshStats, 2000);
refreshStats();
