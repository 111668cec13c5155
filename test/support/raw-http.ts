/**
 * HTTP exchanges on a Unix socket with whatever a hostile client sends: any headers
 * (Content-Encoding, charset), any body, or bytes that are not HTTP at all. For the tests that
 * every error on the plugin and agent sockets is JSON in the protocol's shape.
 */
import { request } from 'node:http';
import { connect } from 'node:net';

/** A reply as received. */
export interface RawReply {
  status: number;
  contentType: string;
  text: string;
}

/** One request with the given method, path (sent as is, not encoded), headers and body. */
export function rawHttp(
  socketPath: string,
  options: { method: string; path: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const body = options.body ?? '';
    const headers = { 'Content-Length': String(Buffer.byteLength(body)), ...options.headers };
    const req = request({ socketPath, method: options.method, path: options.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers['content-type']),
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    // The server may answer (and close) before it read a large body.
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err),
    );
    req.end(body);
  });
}

/** Writes raw bytes, returns everything the server sent until it closed the connection. */
export function rawBytes(socketPath: string, bytes: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `no end of reply within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('utf8'))}`,
        ),
      );
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.write(bytes);
  });
}

/** Splits a raw HTTP/1.1 response into status, Content-Type and body. */
export function parseRawResponse(raw: string): RawReply {
  const end = raw.indexOf('\r\n\r\n');
  const head = end < 0 ? raw : raw.slice(0, end);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  const contentType = /^content-type:\s*(.*)$/im.exec(head)?.[1]?.trim() ?? '';
  return { status, contentType, text: end < 0 ? '' : raw.slice(end + 4) };
}

/**
 * Signs of an error page meant for a developer rather than a client: HTML, stack frames
 * (`    at fn (file:line)`) and file paths. Returns what was found ([] when clean).
 */
export function leaks(text: string): string[] {
  const found: string[] = [];
  if (/<(!DOCTYPE|html|pre|body)\b/i.test(text)) found.push('HTML');
  if (/\bat .*[(/].*:\d+:\d+/.test(text) || /\n\s+at /.test(text)) found.push('stack frame');
  if (/\/(work|src|dist|node_modules|home|root|usr)\//.test(text) || /\.[jt]s:\d+/.test(text)) found.push('file path');
  return found;
}
