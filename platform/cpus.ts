// Cores this process may use. Node 20's os.availableParallelism() honours CPU affinity but not a
// cgroup CPU quota, so in a container with a CPU limit (Kubernetes `resources.limits.cpu`) it
// reports the host's cores and thread defaults derived from it would oversubscribe the quota.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

type Read = (path: string) => string;

const readIfThere: Read = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

/**
 * The CPU quota of this process's cgroup in cores, or null when there is none: cgroup v2's
 * `cpu.max` ("QUOTA PERIOD", or "max PERIOD"), else cgroup v1's `cpu.cfs_quota_us` (-1: none)
 * over `cpu.cfs_period_us`.
 */
export function cgroupCpuQuota(read: Read = readIfThere): number | null {
  const v2 = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/);
  if (v2.length === 2) {
    const [quota, period] = v2.map(Number) as [number, number];
    return v2[0] === 'max' || !(quota > 0 && period > 0) ? null : quota / period;
  }
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').trim());
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us').trim());
  return quota > 0 && period > 0 ? quota / period : null;
}

/** availableParallelism() capped by the cgroup quota (rounded down, at least 1). */
export function usableCpus(read: Read = readIfThere, available: number = availableParallelism()): number {
  const quota = cgroupCpuQuota(read);
  return Math.max(1, Math.floor(quota === null ? available : Math.min(available, quota)));
}
