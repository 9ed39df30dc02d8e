"use strict";

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

const sock = new MiniSocket();
let currentRoom = null;

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

function viaBadge(li, server) {
  const b = li.appendChild(document.createElement("span"));
  b.className = server === me ? "via" : "via remote";
  b.textContent = server === me ? `via ${server} (this server)` : `via ${server}`;
  b.title = "the server this message was sent through";
}

function join() {
  const name = nameInput.value.trim();
  localStorage.setItem("chat.name", name);
  sock.emit("join", { name, room: roomSelect.value });
}

sock.on("connect", () => {
  setStatus(`connected (${sock.id})`, true);
  join();
  refreshStats();
});
sock.on("disconnect", () => { setStatus("disconnected", false); currentRoom = null; });
sock.on("reconnecting", (ms) => setStatus(`reconnecting in ${Math.round(ms / 100) / 10}s…`, false));
sock.on("joined", (j) => {
  if (j.room !== currentRoom) {
    currentRoom = j.room;
    $("messages").textContent = "";
    addLine("system", [["time", hhmmss()], [null, `— you are in #${j.room} as ${j.name}, on ${j.server} —`]]);
  }
  $("text").focus();
  refreshStats();
});
sock.on("chat", (m) => {
  const li = addLine(m.sid === sock.id ? "mine" : "", [["time", hhmmss(m.ts)], ["name", m.name], [null, m.text]]);
  li.dataset.server = m.server;
  viaBadge(li, m.server);
});
sock.on("system", (m) => {
  const li = addLine("system", [["time", hhmmss(m.ts)], [null, m.text]]);
  viaBadge(li, m.server);
  refreshStats();
});
sock.on("notice", (m) => addLine("system", [["time", hhmmss()], [null, `⚠ ${m.text}`]]));

roomSelect.addEventListener("change", join);
nameInput.addEventListener("change", join);
$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  if (sock.emit("chat", { name: nameInput.value.trim(), room: currentRoom, text })) $("text").value = "";
});

// Cluster view: servers in the cluster and connected users, from every server (GET /api/stats).
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
