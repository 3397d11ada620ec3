// Thread defaults honour a container's CPU quota: cgroup v2 cpu.max and cgroup v1 cfs quota/period,
// read through an injected reader standing in for /sys/fs/cgroup.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cgroupCpuQuota, usableCpus } from '../../platform/cpus.ts';

const files = (m: Record<string, string>) => (path: string): string => m[path] ?? '';

test('cgroup v2 cpu.max: a quota caps the cores; "max" means none', () => {
  assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': '200000 100000\n' })), 2);
  assert.equal(cgroupCpuQuota(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), null);
  assert.equal(usableCpus(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }), 16), 1, '1.5 cores round down');
  assert.equal(usableCpus(files({ '/sys/fs/cgroup/cpu.max': '400000 100000\n' }), 16), 4);
  assert.equal(usableCpus(files({ '/sys/fs/cgroup/cpu.max': '400000 100000\n' }), 2), 2, 'never more than the affinity allows');
  assert.equal(usableCpus(files({ '/sys/fs/cgroup/cpu.max': '50000 100000\n' }), 16), 1, 'at least one');
});

test('cgroup v1 cfs quota and period; -1 or no cgroup files means no quota', () => {
  const v1 = (quota: string) => files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': quota, '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' });
  assert.equal(cgroupCpuQuota(v1('300000\n')), 3);
  assert.equal(cgroupCpuQuota(v1('-1\n')), null);
  assert.equal(usableCpus(v1('300000\n'), 16), 3);
  assert.equal(usableCpus(files({}), 6), 6);
});

test('on this machine: at least one core, and no more than availableParallelism()', async () => {
  const { availableParallelism } = await import('node:os');
  const n = usableCpus();
  assert.ok(n >= 1 && n <= availableParallelism(), `usable cores ${n}`);
});
