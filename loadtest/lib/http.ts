// HTTP for the harness: one request over node:http (httpExchange), and the raw-socket side:
// a request's exact bytes and the framing of the responses that come back.

import * as http from 'node:http';
import { REQUEST_TIMEOUT_MS, USER_AGENT, type RequestSpec } from './official-simulation';

export interface Target {
  baseUrl: string;
  /** resolved once, as Gatling caches DNS: no lookup per request */
  address: string;
  family: number;
  port: number;
  hostHeader: string;
  basePath: string;
  /** a unix socket to connect to instead of address and port (an API's own, bypassing nginx) */
  socketPath?: string;
}

/** A Target on this machine's loopback: a stack's nginx. */
export function localTarget(port: number): Target {
  return { baseUrl: `http://localhost:${port}`, address: '127.0.0.1', family: 4, port, hostHeader: `localhost:${port}`, basePath: '' };
}

/** A Target for an API's unix socket. */
export function socketTarget(socketPath: string): Target {
  return { baseUrl: `unix:${socketPath}`, address: '', family: 0, port: 0, hostHeader: 'localhost', basePath: '', socketPath };
}

export interface Raw {
  status: number;
  body: string;
  error?: string;
}

function transportError(err: NodeJS.ErrnoException): string {
  return `${err.code ?? err.name}: ${err.message}`;
}

/** One HTTP exchange. `agent: false` = a new connection closed after the response. */
export function httpExchange(
  target: Target,
  spec: Pick<RequestSpec, 'method' | 'path' | 'body'>,
  agent: http.Agent | false,
  onDone: (r: Raw) => void,
  timeoutMs = REQUEST_TIMEOUT_MS,
): void {
  let settled = false;
  const done = (r: Raw): void => {
    if (settled) return;
    settled = true;
    onDone(r);
  };
  const headers: http.OutgoingHttpHeaders = { host: target.hostHeader, 'user-agent': USER_AGENT };
  if (spec.body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(spec.body);
  }
  const req = http.request({
    ...(target.socketPath ? { socketPath: target.socketPath } : { host: target.address, family: target.family, port: target.port }),
    method: spec.method,
    path: target.basePath + spec.path,
    headers,
    agent,
    timeout: timeoutMs,
  });
  req.on('response', (res) => {
    res.setEncoding('utf8');
    let body = '';
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    res.on('error', (err) => done({ status: res.statusCode ?? 0, body, error: transportError(err) }));
    res.on('aborted', () => done({ status: res.statusCode ?? 0, body, error: 'aborted: the connection closed before the body ended' }));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error(`Request timeout to ${target.hostHeader} after ${timeoutMs} ms`), { code: 'TIMEOUT' })));
  req.on('error', (err) => done({ status: 0, body: '', error: transportError(err) }));
  req.end(spec.body);
}

// ---------------------------------------------------------------------------------------------
// Raw sockets: request bytes and response framing (the open-model generator, the hostile corpus)
// ---------------------------------------------------------------------------------------------

/**
 * A request's exact bytes. `Connection: close`, as node:http sends without an agent (the
 * project's official-test port): nginx closes first, so the generator's side does not pile up
 * TIME_WAIT sockets at thousands of new connections per second.
 */
export function formatRequest(spec: Pick<RequestSpec, 'method' | 'path' | 'body'>, hostHeader: string): string {
  let head = `${spec.method} ${spec.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: ${USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\n`;
  if (spec.body !== undefined) head += `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(spec.body)}\r\n`;
  return `${head}\r\n${spec.body ?? ''}`;
}

/** What the status line and headers say about the rest of the response. */
export interface ResponseHead {
  /** 0 when the status line is not HTTP's */
  status: number;
  /** index of the first body byte */
  bodyStart: number;
  /** Content-Length; BODY_CHUNKED or BODY_UNTIL_CLOSE when absent */
  length: number;
}
export const BODY_CHUNKED = -2;
export const BODY_UNTIL_CLOSE = -1;

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CHUNKED_END = Buffer.from('0\r\n\r\n', 'latin1');

/** The head of the response starting at `at`, once it has fully arrived; undefined before. */
export function parseResponseHead(buf: Buffer, at = 0): ResponseHead | undefined {
  const end = buf.indexOf(HEAD_END, at);
  if (end < 0) return undefined;
  const head = buf.toString('latin1', at, end);
  const statusLine = /^HTTP\/1\.[01] (\d{3})(?: |\r|$)/.exec(head);
  const status = statusLine ? Number(statusLine[1]) : 0;
  let length = BODY_UNTIL_CLOSE;
  const lower = head.toLowerCase();
  const cl = /\r\ncontent-length:[ \t]*(\d+)[ \t]*(?:\r|$)/.exec(lower);
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) length = BODY_CHUNKED;
  else if (cl) length = Number(cl[1]);
  // 1xx, 204 and 304 have no body whatever the headers say.
  if ((status >= 100 && status < 200) || status === 204 || status === 304) length = 0;
  return { status, bodyStart: end + 4, length };
}

/** Whether everything the head announced has arrived. A close-delimited body is never complete before the close. */
export function isResponseComplete(head: ResponseHead, buf: Buffer): boolean {
  if (head.length >= 0) return buf.length - head.bodyStart >= head.length;
  if (head.length === BODY_CHUNKED) {
    // The last chunk without trailers; enough for the JSON error pages a proxy may send chunked.
    return buf.length - head.bodyStart >= CHUNKED_END.length && buf.subarray(buf.length - CHUNKED_END.length).equals(CHUNKED_END);
  }
  return false;
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Parses as many complete responses as `buf` holds (pipelined requests get several). `closed`:
 * the connection ended, so a response without framing ends here. Returns the responses, how many
 * bytes they used, and whether what follows them is not HTTP at all.
 */
export function parseResponses(buf: Buffer, closed: boolean, headRequest = false): { responses: ParsedResponse[]; used: number; garbage: boolean } {
  const responses: ParsedResponse[] = [];
  let at = 0;
  // An HTTP/0.9 answer (nginx answers a request line without a version that way): no status
  // line, the body runs to the close. Reported as status 0.
  if (closed && buf.length > 0 && !buf.toString('latin1', 0, 5).startsWith('HTTP/') && !'HTTP/'.startsWith(buf.toString('latin1', 0, 5))) {
    return { responses: [{ status: 0, headers: {}, body: buf }], used: buf.length, garbage: false };
  }
  while (at < buf.length) {
    const head = parseResponseHead(buf, at);
    if (head === undefined) {
      if (!/^HTTP\/\d/.test(buf.toString('latin1', at, Math.min(buf.length, at + 8))) && buf.length - at >= 8 && at > 0) return { responses, used: at, garbage: true };
      break;
    }
    if (head.status === 0) return { responses, used: at, garbage: true };
    const headers: Record<string, string> = {};
    for (const line of buf.toString('latin1', at, head.bodyStart - 4).split('\r\n').slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = headRequest ? 0 : head.length;
    if (length >= 0) {
      if (head.bodyStart + length > buf.length) break;
      responses.push({ status: head.status, headers, body: buf.subarray(head.bodyStart, head.bodyStart + length) });
      at = head.bodyStart + length;
    } else if (length === BODY_CHUNKED) {
      const chunked = dechunk(buf, head.bodyStart);
      if (chunked === 'garbage') return { responses, used: at, garbage: true };
      if (chunked === undefined) break;
      responses.push({ status: head.status, headers, body: chunked.body });
      at = chunked.end;
    } else {
      // No framing: the body runs to the end of the connection.
      if (!closed) break;
      responses.push({ status: head.status, headers, body: buf.subarray(head.bodyStart) });
      at = buf.length;
    }
  }
  return { responses, used: at, garbage: false };
}

/** A chunked body from `start`: its bytes and where it ends, undefined until complete, or 'garbage'. */
function dechunk(buf: Buffer, start: number): { body: Buffer; end: number } | undefined | 'garbage' {
  const parts: Buffer[] = [];
  let p = start;
  for (;;) {
    const lineEnd = buf.indexOf('\r\n', p);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buf.toString('latin1', p, lineEnd), 16);
    if (Number.isNaN(size)) return 'garbage';
    if (size === 0) {
      const end = buf.indexOf('\r\n\r\n', lineEnd);
      return end < 0 ? undefined : { body: Buffer.concat(parts), end: end + 4 };
    }
    if (lineEnd + 2 + size + 2 > buf.length) return undefined;
    parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
    p = lineEnd + 2 + size + 2;
  }
}
