// model.onnx read from disk in small reads (core/onnx-proto.ts's ByteSource): scanning a model's
// structure reads its headers, not its weights. bundle.ts scans it for external data files at load;
// session.ts plans the served graph (core/graph-edit.ts) in each device worker from it.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { OnnxFormatError, type ByteSource } from '../../core/onnx-proto.ts';

/**
 * model.onnx (or any file) as a ByteSource read in 64 KiB blocks: scanning a model's structure
 * reads its headers, not its weights. Every read returns fresh bytes. close() when done.
 */
export function fileByteSource(path: string): ByteSource & { close(): void } {
  const fd = openSync(path, 'r');
  const length = statSync(path).size;
  const BLOCK = 1 << 16;
  let cached: { start: number; bytes: Uint8Array } | null = null;
  const readAt = (offset: number, n: number): Uint8Array => {
    const out = new Uint8Array(Math.max(0, Math.min(n, length - offset)));
    let done = 0;
    while (done < out.length) {
      const got = readSync(fd, out, done, out.length - done, offset + done);
      if (got === 0) break;
      done += got;
    }
    return done === out.length ? out : out.subarray(0, done);
  };
  return {
    length,
    read(offset, n) {
      if (n > BLOCK / 2) return readAt(offset, n);
      if (!cached || offset < cached.start || offset + n > cached.start + cached.bytes.length) {
        cached = { start: offset, bytes: readAt(offset, BLOCK) };
      }
      const at = offset - cached.start;
      return cached.bytes.slice(at, at + n);
    },
    close: () => closeSync(fd),
  };
}

/**
 * `use` on model.onnx as a ByteSource, closed afterwards; null when the file is not readable as
 * ONNX here: onnxruntime opens the file itself and says what is wrong with it.
 */
export function readModelFile<T>(path: string, use: (src: ByteSource) => T): T | null {
  const src = fileByteSource(path);
  try {
    return use(src);
  } catch (e) {
    if (e instanceof OnnxFormatError) return null;
    throw e;
  } finally {
    src.close();
  }
}
