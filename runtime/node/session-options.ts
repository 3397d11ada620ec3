// The onnxruntime SessionOptions of a device session. The bench's in-process limit and peers use
// the same function, so "the limit" always means these exact settings.
import type { DeviceSpec } from '../../core/runtime.ts';

export type GraphOptLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionTuning {
  readonly graphOptimizationLevel?: GraphOptLevel;
  /** Let idle intra-op threads spin (onnxruntime's default); off here, see below. */
  readonly allowSpinning?: boolean;
}

export function sessionOptions(device: DeviceSpec, intraOpThreads: number, tuning: SessionTuning = {}): Record<string, unknown> {
  const providers =
    device.provider === 'cuda' ? [{ name: 'cuda', deviceId: device.deviceId }] : device.provider === 'webgpu' ? ['webgpu'] : ['cpu'];
  return {
    executionProviders: providers,
    graphOptimizationLevel: tuning.graphOptimizationLevel ?? 'all',
    intraOpNumThreads: intraOpThreads,
    // One batch at a time per session: a second inter-op pool would only contend for cores.
    interOpNumThreads: 1,
    executionMode: 'sequential',
    // Idle intra-op threads sleep instead of spinning: the same cores tokenize and serve gRPC, and
    // spinning threads take them (bench --tune, intra-op threads sweep; numbers in the README).
    extra: { session: { intra_op: { allow_spinning: tuning.allowSpinning ? '1' : '0' } } },
  };
}
