// gRPC handlers for pairpref.v1.PairwisePreference: grpc-js's side of the service in service-core.ts.
// Requests arrive as raw bytes (see protocol/decode.ts) and are decoded one comparison at a time; a
// call's AbortSignal fires when the client cancels or the deadline passes, so dead calls leave the
// queues instead of being computed; CallErrors become gRPC statuses (retryable ones with the
// `pairpref-retryable: 1` trailer). Each call logs with its request id (calls.ts) and, when traced,
// its engine spans go under the grpc instrumentation's server span (telemetry.ts).
import { Metadata, type sendUnaryData, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from '../core/log.ts';
import {
  PairwisePreferenceService,
  type GetModelInfoRequest,
  type ModelInfo,
  type Prediction as WirePrediction,
  type ScoreResponse,
} from '../proto/gen/pairpref/v1/preference.ts';
import { decodeScoreRequest, decodeStreamRequest } from '../protocol/decode.ts';
import { cancelledByDeadline, deadlineOf, requestIdOf } from './calls.ts';
import { CallError, callScope, deadlineSignal, RETRYABLE_TRAILER, type CallInfo, type PreferenceCore, type RowStream, type StreamSink } from './service-core.ts';

/** The service with passthrough request deserializers: handlers decode the bytes themselves. */
export const RawPairwisePreferenceService = {
  ...PairwisePreferenceService,
  score: { ...PairwisePreferenceService.score, requestDeserialize: (b: Buffer): Buffer => b },
  scoreStream: { ...PairwisePreferenceService.scoreStream, requestDeserialize: (b: Buffer): Buffer => b },
  scoreBatchStream: { ...PairwisePreferenceService.scoreBatchStream, requestDeserialize: (b: Buffer): Buffer => b },
} as const;

export interface RawPreferenceServer {
  score(call: ServerUnaryCall<Buffer, ScoreResponse>, callback: sendUnaryData<ScoreResponse>): void;
  scoreStream(call: ServerDuplexStream<Buffer, WirePrediction>): void;
  scoreBatchStream(call: ServerWritableStream<Buffer, WirePrediction>): void;
  getModelInfo(call: ServerUnaryCall<GetModelInfoRequest, ModelInfo>, callback: sendUnaryData<ModelInfo>): void;
}

/** A CallError as grpc-js sends it; a retryable one carries the trailer that tells clients to back off and retry. */
function toServiceError(e: CallError): Partial<ServiceError> {
  if (!e.retryable) return { code: e.code, details: e.message };
  const metadata = new Metadata();
  metadata.set(RETRYABLE_TRAILER, '1');
  return { code: e.code, details: e.message, metadata };
}

type GrpcCall = { metadata: Metadata; getDeadline(): Date | number; on(e: 'cancelled', f: () => void): unknown };

/** The call's signal and scope: 'cancelled' when the client goes away, 'deadline' when its deadline passes. */
function callInfo(call: GrpcCall, method: string, logger: Logger | undefined): CallInfo & { done: () => void } {
  const at = deadlineOf(call);
  const { signal, abort, done } = deadlineSignal(at);
  call.on('cancelled', () => abort(cancelledByDeadline(at) ? 'deadline' : 'cancelled'));
  return { signal, scope: callScope(requestIdOf(call.metadata), method, logger), done };
}

/** A grpc-js writable call as a stream's sink. */
function grpcSink(call: ServerWritableStream<Buffer, WirePrediction> | ServerDuplexStream<Buffer, WirePrediction>, done: () => void): StreamSink {
  return {
    write: (p, flushed) => call.write(p, flushed),
    end: () => {
      done();
      call.end();
    },
    fail: (e) => {
      done();
      call.emit('error', toServiceError(e));
    },
  };
}

/** Wires a grpc-js stream's events to its RowStream. */
function follow(call: ServerWritableStream<Buffer, WirePrediction> | ServerDuplexStream<Buffer, WirePrediction>, s: RowStream, done: () => void): void {
  call.on('error', () => s.cancel());
  call.on('drain', () => s.writable());
  call.once('close', () => {
    done();
    s.closed();
  });
}

export function createPreferenceService(core: PreferenceCore, opts: { logger?: Logger }): RawPreferenceServer {
  return {
    score(call, callback) {
      const info = callInfo(call, 'Score', opts.logger);
      core.score(() => decodeScoreRequest(call.request), info).then(
        (predictions) => {
          info.done();
          callback(null, { predictions });
        },
        (e: unknown) => {
          info.done();
          callback(toServiceError(e as CallError));
        },
      );
    },

    scoreStream(call) {
      const info = callInfo(call, 'ScoreStream', opts.logger);
      let s: RowStream;
      try {
        s = core.openStream(info, call, grpcSink(call, info.done));
      } catch (e) {
        info.done();
        call.emit('error', toServiceError(e as CallError));
        return;
      }
      follow(call, s, info.done);
      call.on('data', (buf: Buffer) => s.row(() => decodeStreamRequest(buf)));
      call.on('end', () => s.end());
    },

    scoreBatchStream(call) {
      const info = callInfo(call, 'ScoreBatchStream', opts.logger);
      let s: RowStream;
      try {
        s = core.openBatchStream(() => decodeScoreRequest(call.request), info, grpcSink(call, info.done));
      } catch (e) {
        info.done();
        call.emit('error', toServiceError(e as CallError));
        return;
      }
      follow(call, s, info.done);
    },

    getModelInfo(_call, callback) {
      callback(null, core.modelInfo());
    },
  };
}
