// A minimal Chrome DevTools Protocol client over a hand-rolled WebSocket (RFC 6455) on
// node:http's upgrade, enough to drive a Node process's inspector (Node 20 has no built-in
// WebSocket client). Used by profile.ts to take a CPU profile of a running API instance.

import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { Socket } from 'node:net';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; method: string };

export class CdpSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private buffer: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.fail(new Error('inspector connection closed')));
    socket.on('error', (err) => this.fail(err));
  }

  /** Opens the WebSocket at `wsUrl` (ws://host:port/uuid). */
  static connect(wsUrl: string, timeoutMs = 5000): Promise<CdpSession> {
    const url = new URL(wsUrl);
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        },
        timeout: timeoutMs,
      });
      req.on('upgrade', (_res, socket, head) => {
        socket.setNoDelay(true);
        const session = new CdpSession(socket);
        if (head.length) session.onData(head);
        resolve(session);
      });
      req.on('response', (res) => reject(new Error(`inspector refused the WebSocket upgrade: HTTP ${res.statusCode}`)));
      req.on('timeout', () => req.destroy(new Error('timeout connecting to the inspector')));
      req.on('error', reject);
      req.end();
    });
  }

  /** Sends a CDP command and resolves with its result. */
  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error('inspector connection closed'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
      this.writeFrame(0x1, Buffer.from(JSON.stringify({ id, method, params })));
    });
  }

  close(): void {
    if (this.closed) return;
    try {
      this.writeFrame(0x8, Buffer.alloc(0));
    } catch {
      // already gone
    }
    this.closed = true;
    this.socket.end();
  }

  /** Client frames are always masked (RFC 6455 §5.3). */
  private writeFrame(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    const len = payload.length;
    const header = len < 126 ? Buffer.alloc(2) : len < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
    header[0] = 0x80 | opcode;
    if (len < 126) header[1] = 0x80 | len;
    else if (len < 65536) {
      header[1] = 0x80 | 126;
      header.writeUInt16BE(len, 2);
    } else {
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(len), 2);
    }
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = payload[i] ^ mask[i & 3];
    this.socket.write(Buffer.concat([header, mask, masked]));
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      if (this.buffer.length < 2) return;
      const fin = (this.buffer[0] & 0x80) !== 0;
      const opcode = this.buffer[0] & 0x0f;
      const masked = (this.buffer[1] & 0x80) !== 0;
      let len = this.buffer[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const maskKey = masked ? this.buffer.subarray(offset, offset + 4) : undefined;
      if (masked) offset += 4;
      if (this.buffer.length < offset + len) return;
      let payload = this.buffer.subarray(offset, offset + len);
      if (maskKey) payload = Buffer.from(payload.map((b, i) => b ^ maskKey[i & 3]));
      this.buffer = this.buffer.subarray(offset + len);
      if (opcode === 0x8) {
        this.closed = true;
        this.socket.end();
        return;
      }
      if (opcode === 0x9) {
        this.writeFrame(0xa, payload);
        continue;
      }
      if (opcode === 0xa) continue;
      this.fragments.push(Buffer.from(payload));
      if (!fin) continue;
      const message = Buffer.concat(this.fragments).toString('utf8');
      this.fragments = [];
      this.onMessage(message);
    }
  }

  private onMessage(text: string): void {
    let msg: { id?: number; result?: unknown; error?: { message: string } };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.id === undefined) return; // an event
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
    else p.resolve(msg.result);
  }

  private fail(err: Error): void {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** GET http://host:port/json/list of a Node inspector: its debugger WebSocket URLs. */
export function inspectorTargets(port: number, host = '127.0.0.1'): Promise<{ webSocketDebuggerUrl: string; url?: string }[]> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/json/list', timeout: 1000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
