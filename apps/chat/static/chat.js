// Shows messages as they come: a WebSocket to /ws, which also takes what
// is said; server-sent events from /events, or a long poll of /poll,
// where WebSocket is missing (what is said then goes to POST /say).
const list = document.getElementById("messages");
const status = document.getElementById("status");
let last = 0;

function show(m) {
  if (m.id <= last) return;
  last = m.id;
  const li = document.createElement("li");
  const who = document.createElement("b");
  who.textContent = m.name;
  li.append(who, document.createTextNode(m.text));
  list.append(li);
}

function listen() {
  const events = new EventSource("/events?since=" + last);
  events.addEventListener("message", (e) => show(JSON.parse(e.data)));
  events.onopen = () => { status.textContent = "live (server-sent events)"; };
  events.onerror = () => { status.textContent = "reconnecting…"; };
}

async function poll() {
  status.textContent = "live (long polling)";
  for (;;) {
    try {
      const res = await fetch("/poll?since=" + last);
      const data = await res.json();
      (data.messages || []).forEach(show);
    } catch (e) {
      status.textContent = "reconnecting…";
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

let socket = null;

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws?since=${last}`);
  ws.onopen = () => { socket = ws; status.textContent = "live (WebSocket)"; };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.error) status.textContent = m.error; else show(m);
  };
  ws.onclose = () => {
    socket = null;
    status.textContent = "reconnecting…";
    setTimeout(connect, 1000);
  };
}

document.getElementById("say").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = document.getElementById("text");
  const name = document.getElementById("name").value;
  if (!text.value.trim()) return;
  const said = text.value;
  text.value = "";
  if (socket) {
    socket.send(JSON.stringify({ name, text: said }));
    return;
  }
  await fetch("/say", { method: "POST",
    body: new URLSearchParams({ name, text: said }) });
});

if (window.WebSocket) connect();
else if (window.EventSource) listen();
else poll();
