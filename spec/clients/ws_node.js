// Node's `ws` (Debian node-ws) against a moonlet server running
// spec/apps/ws.lua: node ws_node.js PORT MODE.  Prints one line per
// check, "ok NAME" or "not ok NAME: why", and exits 1 on any failure.
// MODE: "protocol" (handshake, echo, fragments, deflate, close codes),
// "room" (200 clients, one broadcast), "cycles N" (N connect/echo/close).
'use strict';
const WebSocket = require('ws');
const http = require('http');

const port = Number(process.argv[2]);
const mode = process.argv[3] || 'protocol';
const base = `ws://127.0.0.1:${port}`;
let failed = 0;

function report(name, err) {
  if (err) { failed++; console.log(`not ok ${name}: ${err}`); }
  else console.log(`ok ${name}`);
}

function open(path, opts, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path, protocols || [], opts || {});
    queue(ws);               // messages may come with the handshake
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

// Messages queue per socket, so none is missed between two next().
function queue(ws) {
  ws.inbox = [];
  ws.waiting = [];
  ws.on('message', (data, isBinary) => {
    const w = ws.waiting.shift();
    if (w) w.resolve({ data, isBinary });
    else ws.inbox.push({ data, isBinary });
  });
  ws.on('close', (code) => {
    ws.waiting.forEach((w) => w.reject(new Error('closed ' + code)));
    ws.waiting = [];
  });
}

function next(ws) {
  if (ws.inbox.length > 0) return Promise.resolve(ws.inbox.shift());
  return new Promise((resolve, reject) =>
    ws.waiting.push({ resolve, reject }));
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close',
    (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function check(name, fn) {
  try { await fn(); report(name); } catch (e) { report(name, e.message); }
}

function assert(cond, why) { if (!cond) throw new Error(why); }

async function protocol() {
  await check('handshake and subprotocol', async () => {
    const ws = await open('/echo', {}, ['nope', 'chat.v1']);
    assert(ws.protocol === 'chat.v1', 'protocol ' + ws.protocol);
    const m = await next(ws);
    assert(m.data.toString() === 'protocol chat.v1', 'greeting');
    ws.close();
  });
  await check('echo text and binary at every length', async () => {
    const ws = await open('/plain', { perMessageDeflate: false,
      maxPayload: 2 * 1024 * 1024 });
    for (const n of [0, 125, 126, 65535, 65536, 1024 * 1024]) {
      const bin = Buffer.alloc(n, n % 251);
      ws.send(bin);
      let m = await next(ws);
      assert(m.isBinary && m.data.equals(bin), 'binary ' + n);
      const text = 'é'.repeat(Math.floor(n / 2)) + (n % 2 ? 'x' : '');
      ws.send(text);
      m = await next(ws);
      assert(!m.isBinary && m.data.toString() === text, 'text ' + n);
    }
    ws.close();
  });
  await check('fragmented messages', async () => {
    const ws = await open('/plain', { perMessageDeflate: false });
    ws.send('frag', { fin: false });
    ws.send('men', { fin: false });
    ws.send('ted', { fin: true });
    const m = await next(ws);
    assert(m.data.toString() === 'fragmented', 'got ' + m.data);
    ws.close();
  });
  await check('permessage-deflate negotiated and round-tripped', async () => {
    const ws = await open('/echo', { perMessageDeflate: { threshold: 0 } });
    assert(/permessage-deflate/.test(ws.extensions), 'ext ' + ws.extensions);
    for (const n of [10, 1000, 50000]) {
      const text = 'the quick brown fox '.repeat(n);
      ws.send(text);
      const m = await next(ws);
      assert(m.data.toString() === text, 'deflated echo ' + n);
    }
    ws.close();
  });
  await check('close codes: echoed, 1000, 1011, 1009', async () => {
    let ws = await open('/plain');
    ws.close(4001, 'bye');
    let c = await closed(ws);
    assert(c.code === 4001, 'echo ' + c.code);
    ws = await open('/bye');
    c = await closed(ws);
    assert(c.code === 1000, 'return ' + c.code);
    ws = await open('/boom');
    c = await closed(ws);
    assert(c.code === 1011, 'error ' + c.code);
    ws = await open('/small', { perMessageDeflate: false });
    ws.send(Buffer.alloc(101));
    c = await closed(ws);
    assert(c.code === 1009, 'too big ' + c.code);
  });
}

async function room() {
  const n = 200;
  const socks = [];
  const joined = [];
  for (let i = 0; i < n; i++) {
    const ws = await open('/room', { perMessageDeflate: false });
    joined.push(next(ws));
    socks.push(ws);
  }
  await Promise.all(joined);
  const got = socks.map(next);
  const t0 = Date.now();
  await new Promise((resolve, reject) => {
    const req = http.request({ port, method: 'POST', path: '/say' },
      (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', reject);
    req.end('to everyone');
  });
  await check(`${n} clients receive one broadcast within 2 s`, async () => {
    const all = await Promise.all(got);
    const ms = Date.now() - t0;
    assert(all.every((m) => m.data.toString() === 'to everyone'), 'text');
    assert(ms < 2000, `${ms} ms`);
    console.log(`# ${n} clients in ${ms} ms`);
  });
  socks.forEach((ws) => ws.terminate());
}

async function cycles(count) {
  let done = 0;
  async function one() {
    const ws = await open('/plain', { perMessageDeflate: false });
    ws.send('ping ' + done);
    const m = await next(ws);
    assert(m.data.toString().startsWith('ping'), 'echo');
    ws.close(1000);
    await closed(ws);
  }
  async function worker() {
    while (done < count) { done++; await one(); }
  }
  await check(`${count} connect/echo/close cycles`, async () => {
    const ws = [];
    for (let i = 0; i < 16; i++) ws.push(worker());
    await Promise.all(ws);
  });
}

(async () => {
  if (mode === 'protocol') await protocol();
  else if (mode === 'room') await room();
  else if (mode === 'cycles') await cycles(Number(process.argv[4] || 1000));
  process.exit(failed ? 1 : 0);
})();
