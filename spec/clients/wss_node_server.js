// A wss:// echo server with Node's ws over https, for moonlet's client:
// node wss_node_server.js CERT KEY; prints "listening PORT".
'use strict';
const fs = require('fs');
const https = require('https');
const WebSocket = require('ws');

const server = https.createServer({ cert: fs.readFileSync(process.argv[2]),
  key: fs.readFileSync(process.argv[3]) });
const wss = new WebSocket.Server({ server });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(0, '127.0.0.1', () => {
  console.log('listening ' + server.address().port);
});
setTimeout(() => process.exit(0), 120000);   // ends by itself
