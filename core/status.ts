// Status codes of per-row errors and call failures. The numbers are gRPC's (google.rpc.Code), so
// the wire, the SDK, the browser page and the CLI all speak one set; defined once here.
export const Status = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];
