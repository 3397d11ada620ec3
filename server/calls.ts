// What every call gets before its handler runs: a request id, and its outcome counted by method and
// status code. Both are server interceptors, so calls refused before a handler (a missing bearer
// token, the model still loading) have them too.
import { Metadata, ServerInterceptingCall, status, type ServerInterceptor, type StatusObject } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';

/** The request id's metadata key: read from the client, echoed in response headers and trailers. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** A client's id is kept when it is 1-128 visible ASCII characters; otherwise the server makes one. */
const ACCEPTED_ID = /^[\x21-\x7e]{1,128}$/;

/** The id a call goes by: the client's `x-request-id` when acceptable, else a new UUID (both ports). */
export function acceptRequestId(sent: string | null | undefined): string {
  return typeof sent === 'string' && ACCEPTED_ID.test(sent) ? sent : randomUUID();
}

/** A status code's gRPC name (OK, INVALID_ARGUMENT, ...): Connect's codes are gRPC's numbers. */
export function statusName(code: number): string {
  return status[code] ?? String(code);
}

/** A grpc-js call's deadline in epoch ms (Infinity when it has none). */
export function deadlineOf(call: { getDeadline(): Date | number }): number {
  const deadline = call.getDeadline();
  return deadline instanceof Date ? deadline.getTime() : Number(deadline);
}

/** grpc-js reports a passed deadline as a cancellation too: the clock tells the two apart (both in handlers and in the interceptor). */
export function cancelledByDeadline(at: number): boolean {
  return Number.isFinite(at) && Date.now() >= at - 1;
}

/** The request id the interceptor put in the call's metadata ('' outside an intercepted call). */
export function requestIdOf(metadata: Metadata): string {
  const v = metadata.get(REQUEST_ID_HEADER)[0];
  return typeof v === 'string' ? v : '';
}

/**
 * Takes the client's `x-request-id` (or makes a UUID), puts it in the metadata the handler sees,
 * and adds it to the response headers and trailers (a call refused before it sends headers has it
 * in its trailers alone).
 */
export function requestIdInterceptor(): ServerInterceptor {
  return (_method, call) => {
    let id = '';
    const withId = (md: Metadata | null | undefined): Metadata => {
      const out = md ?? new Metadata();
      if (id) out.set(REQUEST_ID_HEADER, id);
      return out;
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md, nextMd) => {
            const sent = md.get(REQUEST_ID_HEADER)[0];
            id = acceptRequestId(typeof sent === 'string' ? sent : undefined);
            md.set(REQUEST_ID_HEADER, id);
            nextMd(md);
          },
        }),
      sendMetadata: (md, next) => next(withId(md)),
      sendStatus: (st, next) => next({ ...st, metadata: withId(st.metadata) } satisfies StatusObject),
    });
  };
}

/** A call's end as the metrics see it. */
export interface CallOutcome {
  /** Method name within the service: Score, ScoreStream, GetModelInfo. */
  readonly method: string;
  /** gRPC status name: OK, INVALID_ARGUMENT, CANCELLED, ... */
  readonly code: string;
  readonly seconds: number;
}

/**
 * Reports each call of `service` once, when its status is sent, or when it is cancelled (the client
 * went away or its deadline passed: no status goes through the interceptors then).
 */
export function callOutcomeInterceptor(service: string, report: (o: CallOutcome) => void): ServerInterceptor {
  const prefix = `/${service}/`;
  return (method, call) => {
    if (!method.path.startsWith(prefix)) return new ServerInterceptingCall(call);
    const name = method.path.slice(prefix.length);
    const started = performance.now();
    let done = false;
    const end = (code: number): void => {
      if (done) return;
      done = true;
      report({ method: name, code: statusName(code), seconds: (performance.now() - started) / 1000 });
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onCancel: () => end(cancelledByDeadline(deadlineOf(call)) ? status.DEADLINE_EXCEEDED : status.CANCELLED),
        }),
      sendStatus: (st, next) => {
        end(st.code);
        next(st);
      },
    });
  };
}
