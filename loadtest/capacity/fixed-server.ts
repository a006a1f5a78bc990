// The HTTP-only baseline of npm run capacity: a node:http server that answers every request 200
// with one fixed, statement-sized JSON body and never touches a database. Run by the native
// stack in place of server.js (CREBITOS_API_SCRIPT=dist/loadtest/capacity/fixed-server.js), behind the
// same nginx and inside the same envelope, it measures what the HTTP path alone can carry:
// a ceiling for any stack built on nginx + two node:http instances.
//
// It listens like server.ts (SOCKET_PATH, else PORT/HOST), with the same keep-alive settings,
// reads each request's body before answering (as the real API must), and exits on SIGTERM.

import * as fs from 'node:fs';
import * as http from 'node:http';

/** An extrato with ten entries, about the size of the real one under load (~1 KB). */
export function fixedBody(): Buffer {
  const entry = (i: number): Record<string, unknown> => ({
    valor: 1000 + i,
    tipo: i % 3 === 0 ? 'c' : 'd',
    descricao: `descricao${i}`,
    realizada_em: `2024-01-17T02:34:${String(10 + i).padStart(2, '0')}.000000Z`,
  });
  const statement = {
    saldo: { total: -9098, data_extrato: '2024-01-17T02:34:41.217753Z', limite: 100000 },
    ultimas_transacoes: Array.from({ length: 10 }, (_, i) => entry(i)),
  };
  return Buffer.from(JSON.stringify(statement));
}

export function createFixedServer(body: Buffer = fixedBody()): http.Server {
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(body.length) };
  const server = http.createServer((req, res) => {
    req.resume();
    req.once('end', () => {
      res.writeHead(200, headers);
      res.end(body);
    });
  });
  // As server.ts: nginx, not the API, decides when an upstream keep-alive connection closes.
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  return server;
}

if (require.main === module) {
  const name = process.env.INSTANCE_NAME || `fixed:${process.pid}`;
  const socketPath = process.env.SOCKET_PATH || '';
  const server = createFixedServer();
  const onListening = (): void => {
    // nginx's workers run as another user; they need write access to connect.
    if (socketPath) fs.chmodSync(socketPath, 0o666);
    console.error(`[${name}] fixed-body server listening on ${socketPath || (server.address() as { port: number }).port}`);
  };
  if (socketPath) {
    fs.rmSync(socketPath, { force: true });
    server.listen(socketPath, onListening);
  } else {
    server.listen(Number(process.env.PORT || 3000), process.env.HOST || '0.0.0.0', onListening);
  }
  const stop = (signal: string): void => {
    console.error(`[${name}] ${signal}: stopping`);
    if (socketPath) fs.rmSync(socketPath, { force: true });
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // Busy connections get a moment to finish; the baseline has nothing worth waiting longer for.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
