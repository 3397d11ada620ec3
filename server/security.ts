// Transport security: TLS (optionally mutual), and a bearer token checked in constant time by a
// server interceptor. Health stays callable without a token (load balancers and kubelet probes
// carry none); reflection and scoring need it.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ResponderBuilder, ServerCredentials, ServerInterceptingCall, ServerListenerBuilder, status, type Metadata, type ServerInterceptor } from '@grpc/grpc-js';

export interface TlsOptions {
  /** PEM certificate chain and private key of the server. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS). */
  readonly clientCa?: Buffer;
}

export function serverCredentials(tls: TlsOptions | undefined): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** An `authorization` header value is `Bearer <token>`; digests of equal length make the comparison constant-time (both ports). */
export function authorizationMatches(header: string | null | undefined, token: string): boolean {
  const m = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
  return timingSafeEqual(digest(m?.[1] ?? ''), digest(token)) && m !== null;
}

/** `authorization: Bearer <token>` in a gRPC call's metadata equals the token. */
function bearerMatches(metadata: Metadata, token: string): boolean {
  const header = metadata.get('authorization')[0];
  return authorizationMatches(typeof header === 'string' ? header : undefined, token);
}

/** What a call without the right token is told, on either port. */
export const UNAUTHENTICATED_MESSAGE = 'missing or wrong bearer token (metadata "authorization: Bearer <token>")';

const OPEN_PREFIX = '/grpc.health.v1.Health/';

/** UNAUTHENTICATED for every call but health checks unless the bearer token matches. */
export function bearerTokenInterceptor(token: string, onRefused: () => void): ServerInterceptor {
  return (method, call) => {
    if (method.path.startsWith(OPEN_PREFIX)) return new ServerInterceptingCall(call);
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (bearerMatches(metadata, token)) return next(metadata);
        onRefused();
        call.sendStatus({ code: status.UNAUTHENTICATED, details: UNAUTHENTICATED_MESSAGE });
      })
      .build();
    return new ServerInterceptingCall(call, new ResponderBuilder().withStart((next) => next(listener)).build());
  };
}

/** Loopback addresses, where no one else can connect; anything else wants TLS or a token. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
}
