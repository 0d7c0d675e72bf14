// Reference Socket.IO peer for courier's benchmarks: the classic "rooms
// named after users" design for sending to a specific user. Each socket
// joins "user:<id>"; a direct message is an emit to that room, so it
// reaches every connection of the user; group rooms are "room:<name>".
//
// Usage: node server.js [--port N] [--ping-interval MS] [--ping-timeout MS]
//   (or PORT, PING_INTERVAL, PING_TIMEOUT; port 0 picks a free port; the
//   ping settings default to Socket.IO's 25000 and 20000 and exist for
//   tests)
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");

function arg(name, env, def) {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name && i + 1 < args.length) return args[i + 1];
    if (args[i].startsWith(name + "=")) return args[i].slice(name.length + 1);
  }
  return process.env[env] || def;
}

function intArg(name, env, def, min, max) {
  const s = arg(name, env, def);
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`bad ${name} ${JSON.stringify(s)}`);
    process.exit(2);
  }
  return n;
}

const port = intArg("--port", "PORT", "3000", 0, 65535);
const pingInterval = intArg("--ping-interval", "PING_INTERVAL", "25000", 1, 2 ** 31 - 1);
const pingTimeout = intArg("--ping-timeout", "PING_TIMEOUT", "20000", 1, 2 ** 31 - 1);

const httpServer = createServer();
const io = new Server(httpServer, {
  transports: ["websocket"], // no HTTP long-polling
  perMessageDeflate: false, // no per-message compression
  httpCompression: false,
  serveClient: false,
  pingInterval,
  pingTimeout,
});

// The user id comes from the handshake: auth {user} or query ?user=.
io.use((socket, next) => {
  const hs = socket.handshake;
  const user = (hs.auth && hs.auth.user) || hs.query.user;
  if (typeof user !== "string" || user === "") {
    return next(new Error("no user"));
  }
  socket.data.user = user;
  next();
});

io.on("connection", (socket) => {
  socket.join("user:" + socket.data.user);

  socket.on("dm", (to, payload, ack) => {
    io.to("user:" + to).emit("message", payload);
    if (typeof ack === "function") ack();
  });

  socket.on("join", (room, ack) => {
    socket.join("room:" + room);
    if (typeof ack === "function") ack();
  });

  socket.on("publish", (room, payload, ack) => {
    socket.to("room:" + room).emit("message", payload);
    if (typeof ack === "function") ack();
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${httpServer.address().port}`);
});

function shutdown() {
  // io.close() disconnects every socket and closes the HTTP server.
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
