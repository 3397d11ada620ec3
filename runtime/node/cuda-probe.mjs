// Proves the CUDA execution provider works on this host: creates a one-node session on
// cuda:<deviceId> and runs it. Run as a child process by devices.ts (`--devices auto`), so a
// provider whose CUDA or cuDNN libraries are missing, or a driver that crashes the process, costs
// a failed probe instead of the server. Prints one JSON line: {"ok":true} or {"ok":false,"reason":...}.
import * as ort from 'onnxruntime-node';

// y = x + x, opset 13, 83 bytes (made with the onnx Python package; onnx.checker passed).
const MODEL = Buffer.from('CAgSDnBhaXJwcmVmLXByb2JlOjkKDgoBeAoBeBIBeSIDQWRkEgVwcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEA0=', 'base64');
const deviceId = Number(process.argv[2] ?? 0);

try {
  const session = await ort.InferenceSession.create(MODEL, { executionProviders: [{ name: 'cuda', deviceId }] });
  const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.of(1.5), [1]) });
  if (y?.data[0] !== 3) throw new Error(`the probe session answered ${String(y?.data[0])} instead of 3`);
  await session.release();
  process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ ok: false, reason: e instanceof Error ? e.message : String(e) })}\n`);
}
