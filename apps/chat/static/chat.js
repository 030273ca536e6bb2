// Shows messages as they come: server-sent events from /events, or a
// long poll of /poll where EventSource is missing.
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

document.getElementById("say").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = document.getElementById("text");
  if (!text.value.trim()) return;
  const body = new URLSearchParams({
    name: document.getElementById("name").value, text: text.value });
  text.value = "";
  await fetch("/say", { method: "POST", body });
});

if (window.EventSource) listen(); else poll();
