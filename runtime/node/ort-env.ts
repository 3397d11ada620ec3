// onnxruntime 1.30 records usage telemetry unless ORT_DISABLE_TELEMETRY is set: a device id and an event
// database that keeps growing (2.7 MB after a few hours of tests here) under
// ~/.cache/Microsoft/DeveloperTools/.onnxruntime, with HTTPS uploads. A sidecar should not phone home
// by default, so it is off unless the user set the variable (ORT_DISABLE_TELEMETRY=0 turns it back on).
// session.ts imports this module before onnxruntime-node: ESM evaluates imports in order, so the
// native library sees the variable when it starts. Worker threads and child processes inherit it.
process.env['ORT_DISABLE_TELEMETRY'] ??= '1';

export {};
