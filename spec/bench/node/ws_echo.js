// The WebSocket scenarios' Node server: Node's ws (Debian node-ws), one
// process, echoing every message; GET /ws, no compression (as the
// others).  Prints "listening on http://127.0.0.1:PORT".
'use strict';
const http = require('http');
const WebSocket = require('ws');

const server = http.createServer((req, res) => res.end('Hello, World!'));
const wss = new WebSocket.Server({ server, path: '/ws',
  perMessageDeflate: false, maxPayload: 1024 * 1024 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  console.log('listening on http://127.0.0.1:' + server.address().port);
});
