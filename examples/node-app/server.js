'use strict';

// node-app: GET /?name=x -> JSON greeting, GET /healthz -> "ok". PORT selects the port (default 3000).
const http = require('node:http');
const { greet } = require('./lib/greet');

const port = Number(process.env.PORT || 3000);

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok\n');
    return;
  }
  if (url.pathname === '/') {
    const body = { ...greet(url.searchParams.get('name')), uid: process.getuid(), node: process.version };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body) + '\n');
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

server.listen(port, () => console.log(`node-app listening on :${port}`));

// stop cleanly on SIGTERM (docker stop, Kubernetes) and Ctrl-C
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
