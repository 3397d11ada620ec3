// Targets -> grpc-js channels. Unary calls share one round_robin channel over every replica (grpc-js
// skips replicas that are down). Streams get one channel per replica instead: the SDK deals the rows
// itself, so it knows which replica holds which unanswered rows when one of them fails. Every
// channel sends keepalive pings, so a peer that vanished without closing its socket (power loss,
// SIGSTOP, a dropped route) is noticed by the transport rather than waited on forever.
import { credentials as grpcCredentials, InterceptingCall, type ChannelCredentials, type ChannelOptions, type ClientOptions, type Interceptor } from '@grpc/grpc-js';
import { lookup } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { PairwisePreferenceClient } from '../proto/gen/pairpref/v1/preference.ts';

export const DEFAULT_KEEPALIVE_TIME_MS = 30_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;

/** TLS to the server: its CA (else the system roots), and a client certificate for mutual TLS. */
export interface TlsSettings {
  /** PEM CA bundle that signed the server's certificate. */
  readonly ca?: Buffer;
  /** PEM client certificate chain and key, for a server started with --tls-client-ca. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Name to check the server's certificate against, when targets are IPs or differ from it. */
  readonly serverName?: string;
}

export interface ChannelSettings {
  /** Default: insecure, or TLS when `tls` is set. Explicit grpc-js credentials win over `tls`. */
  readonly credentials?: ChannelCredentials;
  readonly tls?: TlsSettings;
  /** Bearer token for a server started with --auth-token-file (sent as `authorization: Bearer ...`). */
  readonly token?: string;
  /** Largest message received (default 64 MiB, the server's default limit). */
  readonly maxMessageBytes?: number;
  /** Ping an idle connection after this long (default 30,000 ms). */
  readonly keepaliveTimeMs?: number;
  /** Drop the connection when a ping is not answered within this (default 10,000 ms). */
  readonly keepaliveTimeoutMs?: number;
  /** Extra grpc-js channel options (win over the ones above). */
  readonly channelOptions?: ChannelOptions;
}

/** One replica as streams see it: the target as the caller named it, and its own channel. */
export interface Replica {
  readonly target: string;
  readonly client: PairwisePreferenceClient;
}

export interface Channels {
  /** The grpc-js target of the unary channel, e.g. "ipv4:127.0.0.1:5001,127.0.0.1:5002". */
  readonly target: string;
  readonly unary: PairwisePreferenceClient;
  readonly replicas: readonly Replica[];
}

const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

interface Addresses {
  readonly family: 'ipv4' | 'ipv6';
  /** "IP:PORT", or "[IP]:PORT" for IPv6, one per target in the caller's order. */
  readonly hostPorts: readonly string[];
}

function splitHostPort(t: string): { host: string; port: string } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(t) ?? /^([^:]+):(\d+)$/.exec(t);
  if (!m) throw new Error(`target "${t}" is not HOST:PORT`);
  return { host: m[1] as string, port: m[2] as string };
}

/** HOST:PORT targets -> addresses of one family; host names are resolved once, here. */
async function resolveAddresses(targets: readonly string[]): Promise<Addresses> {
  const addrs = await Promise.all(
    targets.map(async (t) => {
      const { host, port } = splitHostPort(t.replace(/^dns:(\/\/\/)?/, ''));
      const ip = isIPv4(host) || isIPv6(host) ? host : (await lookup(host)).address;
      return { ip, port };
    }),
  );
  if (addrs.every((a) => isIPv4(a.ip))) return { family: 'ipv4', hostPorts: addrs.map((a) => `${a.ip}:${a.port}`) };
  if (addrs.every((a) => isIPv6(a.ip))) return { family: 'ipv6', hostPorts: addrs.map((a) => `[${a.ip}]:${a.port}`) };
  throw new Error(`connect: targets resolve to both IPv4 and IPv6 addresses (${addrs.map((a) => a.ip).join(', ')}); use one family`);
}

/** The one grpc-js target that lists every address, e.g. "ipv4:127.0.0.1:5001,127.0.0.1:5002". */
const addressListTarget = (a: Addresses): string => `${a.family}:${a.hostPorts.join(',')}`;

/**
 * Targets -> one grpc-js target. One target is used as given (dns:, unix:, ... or HOST:PORT). Several
 * HOST:PORT targets become one ipv4:/ipv6: address list that round_robin spreads calls over;
 * host names are resolved once, here.
 */
export async function resolveTarget(targets: readonly string[]): Promise<string> {
  if (targets.length === 0) throw new Error('connect: no target given');
  if (targets.length === 1) return targets[0] as string;
  return addressListTarget(await resolveAddresses(targets));
}

/** Adds the bearer token to every call's metadata (works over TLS and plaintext alike). */
function bearer(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

function credentialsOf(s: ChannelSettings): ChannelCredentials {
  if (s.credentials) return s.credentials;
  if (!s.tls) return grpcCredentials.createInsecure();
  return grpcCredentials.createSsl(s.tls.ca ?? null, s.tls.key ?? null, s.tls.cert ?? null);
}

/** The channel options every channel of a connection gets. */
function channelOptionsOf(s: ChannelSettings): ClientOptions {
  return {
    ...(s.token ? { interceptors: [bearer(s.token)] } : {}),
    ...(s.tls?.serverName ? { 'grpc.ssl_target_name_override': s.tls.serverName, 'grpc.default_authority': s.tls.serverName } : {}),
    'grpc.max_receive_message_length': s.maxMessageBytes ?? 64 * 1024 * 1024,
    'grpc.keepalive_time_ms': s.keepaliveTimeMs ?? DEFAULT_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': s.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
    // Also ping connections with no call open: a replica that dies between streams is noticed too.
    'grpc.keepalive_permit_without_calls': 1,
    ...s.channelOptions,
  };
}

/** Creates the (lazily connecting) channels: the round-robin one and, with several targets, one per replica. */
export async function openChannels(targets: readonly string[], s: ChannelSettings): Promise<Channels> {
  if (targets.length === 0) throw new Error('connect: no target given');
  const creds = credentialsOf(s);
  const opts = channelOptionsOf(s);
  const roundRobin = (target: string): PairwisePreferenceClient =>
    new PairwisePreferenceClient(target, creds, { ...opts, 'grpc.service_config': ROUND_ROBIN, 'grpc.service_config_disable_resolution': 1 });
  if (targets.length === 1) {
    // One target, used as given: streams share the unary channel (round robin over one replica is that replica).
    const unary = roundRobin(targets[0] as string);
    return { target: targets[0] as string, unary, replicas: [{ target: targets[0] as string, client: unary }] };
  }
  const addrs = await resolveAddresses(targets);
  const target = addressListTarget(addrs);
  const replicas = addrs.hostPorts.map((hp, i) => ({ target: targets[i] as string, client: new PairwisePreferenceClient(`${addrs.family}:${hp}`, creds, opts) }));
  return { target, unary: roundRobin(target), replicas };
}

export function closeChannels(c: Channels): void {
  c.unary.close();
  for (const r of c.replicas) if (r.client !== c.unary) r.client.close();
}
