// A rows/s + ETA progress bar on stderr, only when both stdout and stderr are terminals
// (piped or redirected runs, CI and tests stay quiet).
import { SingleBar } from 'cli-progress';

export interface Progress {
  tick(rows: number): void;
  stop(): void;
}

const quiet: Progress = { tick() {}, stop() {} };

export function progressWanted(): boolean {
  return Boolean(process.stderr.isTTY && process.stdout.isTTY);
}

export function startProgress(label: string, total: number): Progress {
  if (!progressWanted()) return quiet;
  const started = performance.now();
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}`,
    etaBuffer: 200,
    fps: 5,
    hideCursor: true,
  });
  bar.start(total, 0, { rate: '0' });
  let done = 0;
  return {
    tick(rows) {
      done += rows;
      const s = (performance.now() - started) / 1000;
      bar.update(done, { rate: s > 0 ? (done / s).toFixed(1) : '0' });
    },
    stop() {
      bar.stop();
    },
  };
}
