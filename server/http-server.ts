// The HTTP port (`pairpref serve --http-port`): PairwisePreference over Connect, gRPC-Web and JSON
// (http-service.ts, connect-node), CORS for the origins given, and `GET /healthz`. Plaintext is
// HTTP/1.1 (what browsers speak to a plain http:// URL); with TLS the port also speaks HTTP/2 (ALPN),
// where Connect's bidirectional ScoreStream works too. It drains with the gRPC port: health says
// NOT_SERVING first, then new calls are refused and the listener closes, in-flight calls finish up
// to the timeout, then they are cancelled and the connections closed.
import { Code, ConnectError, cors as connectCors } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2';
import type { Socket } from 'node:net';
import { REQUEST_ID_HEADER } from './calls.ts';
import { createHttpService, type HttpServiceOptions } from './http-service.ts';
import type { TlsOptions } from './security.ts';
import { RETRYABLE_TRAILER } from './service-core.ts';

export interface HttpPortOptions extends HttpServiceOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly tls?: TlsOptions;
  /** Origins whose pages may call this port (CORS): exact origins such as http://localhost:5173, or '*' for any. */
  readonly corsOrigins: readonly string[];
  /** Largest request or response message in bytes; larger is RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes: number;
  /** Health as the gRPC port reports it: SERVING, or NOT_SERVING while loading, with no device up, or draining. */
  readonly serving: () => boolean;
}

export interface HttpPort {
  readonly port: number;
  /** Refuses new calls (the gate answers UNAVAILABLE), stops listening, waits for in-flight calls up to timeoutMs, then cancels them; true when it had to. */
  close(timeoutMs: number): Promise<boolean>;
  /** Closes every connection now. */
  terminate(): void;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Headers a page may send (Connect's and gRPC-Web's, plus ours) and read (status, request id, retryable). */
const ALLOW_HEADERS = [...connectCors.allowedHeaders, 'authorization', REQUEST_ID_HEADER, 'traceparent', 'tracestate'];
const EXPOSE_HEADERS = [...connectCors.exposedHeaders, REQUEST_ID_HEADER, `trailer-${REQUEST_ID_HEADER}`, RETRYABLE_TRAILER, `trailer-${RETRYABLE_TRAILER}`];

/** CORS response headers for a request from `origin`, or null when that origin is not allowed. */
function corsHeaders(origin: string | undefined, allowed: readonly string[]): Record<string, string> | null {
  if (origin === undefined || !(allowed.includes('*') || allowed.includes(origin))) return null;
  return { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': EXPOSE_HEADERS.join(', ') };
}

function header(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function startHttpPort(o: HttpPortOptions): Promise<HttpPort> {
  const abort = new AbortController();
  const svc = createHttpService(o);
  const rpc = connectNodeAdapter({
    routes: svc.routes,
    requestGate: svc.requestGate,
    // The gRPC port serves gRPC; this one serves what browsers and curl can send.
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: o.maxMessageBytes,
    writeMaxBytes: o.maxMessageBytes,
    // Calls still running at the drain timeout are cancelled through their handler context's signal.
    shutdownSignal: abort.signal,
  });
  let inflight = 0;
  let idle: (() => void) | null = null;

  const handle = (req: Req, res: Res): void => {
    const cors = corsHeaders(header(req, 'origin'), o.corsOrigins);
    if (cors) for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'OPTIONS') {
      // A preflight: answered here, never passed to a handler.
      if (!cors) {
        res.writeHead(403, { 'content-type': 'text/plain' }).end(`origin ${header(req, 'origin') ?? '(none)'} is not allowed (--http-cors-origin)\n`);
        return;
      }
      res.writeHead(204, { 'access-control-allow-methods': connectCors.allowedMethods.join(', '), 'access-control-allow-headers': ALLOW_HEADERS.join(', '), 'access-control-max-age': '7200' }).end();
      return;
    }
    if (path === '/healthz') {
      const serving = o.serving();
      res.writeHead(serving ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: serving ? 'SERVING' : 'NOT_SERVING' })}\n`);
      return;
    }
    inflight++;
    res.once('close', () => {
      if (--inflight === 0) idle?.();
    });
    rpc(req as IncomingMessage & Http2ServerRequest, res as ServerResponse & Http2ServerResponse);
  };

  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  let server: HttpServer | Http2SecureServer;
  if (o.tls) {
    const h2 = createSecureServer(
      {
        allowHTTP1: true,
        cert: o.tls.cert,
        key: o.tls.key,
        ...(o.tls.clientCa ? { ca: o.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
      },
      handle,
    );
    h2.on('session', (s: Http2Session) => {
      sessions.add(s);
      s.once('close', () => sessions.delete(s));
    });
    h2.on('secureConnection', (sock: Socket) => {
      sockets.add(sock);
      sock.once('close', () => sockets.delete(sock));
    });
    server = h2;
  } else {
    const h1 = createHttpServer(handle);
    h1.on('connection', (sock: Socket) => {
      sockets.add(sock);
      sock.once('close', () => sockets.delete(sock));
    });
    server = h1;
  }

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'it is in use (pick another with --http-port, or 0 for a free one)' : e.code === 'EACCES' ? 'permission denied' : e.message;
      reject(new Error(`cannot listen on ${o.host}:${o.port} (--http-port): ${why}`));
    });
    server.listen(o.port, o.host, () => {
      const a = server.address();
      resolve(a && typeof a === 'object' ? a.port : o.port);
    });
  });

  const terminate = (): void => {
    abort.abort();
    server.close();
    for (const s of sessions) s.destroy();
    for (const s of sockets) s.destroy();
  };

  return {
    port,
    close(timeoutMs) {
      // New calls are refused by the gate from here (o.draining()); the listener takes no new connections.
      server.close();
      for (const s of sessions) s.close();
      if ('closeIdleConnections' in server) server.closeIdleConnections();
      return new Promise((resolve) => {
        const finish = (cancelled: boolean): void => {
          clearTimeout(timer);
          idle = null;
          if (cancelled) {
            abort.abort(new ConnectError('pairpref is shutting down: the call ran past the drain timeout', Code.Unavailable));
            // Give the cancelled handlers a moment to send their status before the sockets go.
            setTimeout(terminate, 200).unref();
          } else {
            terminate();
          }
          resolve(cancelled);
        };
        const timer = setTimeout(() => finish(true), timeoutMs);
        if (inflight === 0) finish(false);
        else idle = () => finish(false);
      });
    },
    terminate,
  };
}
