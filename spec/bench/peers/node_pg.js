// bench peer: the same two routes as apps/pg.lua with Node's http and
// pg (node-postgres, from npm), one process, a pool of 10.
// Usage: node node_pg.js PORT URL; prints "listening on PORT".
"use strict";
const http = require("http");
const { Pool } = require("pg");

const pool = new Pool({ connectionString: process.argv[3], max: 10 });
const SQL = "SELECT id, randomnumber FROM world WHERE id = $1";
const rand = () => 1 + Math.floor(Math.random() * 10000);

async function one() {
  const r = await pool.query(SQL, [rand()]);
  return r.rows[0];
}

async function twenty() {
  const client = await pool.connect();
  try {
    const out = [];
    for (let i = 0; i < 20; i++)
      out.push((await client.query(SQL, [rand()])).rows[0]);
    return out;
  } finally {
    client.release();
  }
}

http.createServer(async (req, res) => {
  try {
    let body;
    if (req.url === "/db") body = await one();
    else if (req.url === "/queries") body = await twenty();
    else { res.writeHead(404); res.end(); return; }
    const s = JSON.stringify(body);
    res.writeHead(200, { "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(s) });
    res.end(s);
  } catch (e) {
    res.writeHead(502);
    res.end(String(e));
  }
}).listen(Number(process.argv[2]), "127.0.0.1", () => {
  console.log("listening on", process.argv[2]);
});
