import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  createVmCgroup,
  describeCgroups,
  detectCgroups,
  limitsForTemplate,
  parseProcCgroup,
  processCgroups,
  QEMU_MEMORY_OVERHEAD_MB,
  QEMU_PIDS_MAX,
  readVmLimits,
  removeVmCgroup,
  type CgroupSupport,
} from '../src/operator/cgroups.ts';
import { InvalidNameError } from '../src/names.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vman-cgroups-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const MiB = 2 ** 20;
const VM = 'vm-0123456789ab';

/** A fake host: `proc/...` and `cg/...` files (a name ending in "/" is an empty folder). */
function host(files: Record<string, string>): { procRoot: string; cgroupRoot: string; cg: (p: string) => string } {
  const root = path.join(tmp, `host-${++n}`);
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(root, name);
    if (name.endsWith('/')) {
      mkdirSync(file, { recursive: true });
    } else {
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, text);
    }
  }
  mkdirSync(path.join(root, 'cg'), { recursive: true });
  const cgroupRoot = path.join(root, 'cg');
  return { procRoot: path.join(root, 'proc'), cgroupRoot, cg: (p) => path.join(cgroupRoot, p) };
}

/** /proc/self/cgroup of a hybrid host like the CI machine: v1 hierarchies, an empty cgroup2. */
const HYBRID_SELF = '9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n';

describe('detecting cgroups on fake hosts', () => {
  it('cgroup v2 with controllers: VM cgroups beside vman\'s own, memory and pids handed down to them', async () => {
    const h = host({
      'proc/self/cgroup': '0::/system.slice/vman.service\n',
      'cg/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
      'cg/cgroup.subtree_control': 'cpu memory pids\n',
      'cg/system.slice/cgroup.controllers': 'cpu memory pids\n',
      'cg/system.slice/cgroup.subtree_control': 'cpu\n',
      'cg/system.slice/vman.service/cgroup.procs': '4242\n',
    });
    const s = await detectCgroups({ ...h, fresh: true });
    assert.deepEqual(s, { kind: 'v2', base: h.cg('system.slice/vman-vms') });
    assert.equal(readFileSync(h.cg('system.slice/cgroup.subtree_control'), 'utf8'), '+memory +pids');
    assert.equal(readFileSync(h.cg('system.slice/vman-vms/cgroup.subtree_control'), 'utf8'), '+memory +pids');
    // The test cgroup is gone, vman's own cgroup untouched.
    assert.deepEqual(readdirSync(h.cg('system.slice/vman-vms')), ['cgroup.subtree_control']);
    assert.deepEqual(readdirSync(h.cg('system.slice/vman.service')), ['cgroup.procs']);
    assert.equal(describeCgroups(s), `cgroup v2 memory and pids under ${h.cg('system.slice/vman-vms')}`);
  });

  it('cgroup v2 with vman in the root cgroup: VM cgroups under the root', async () => {
    const h = host({ 'proc/self/cgroup': '0::/\n', 'cg/cgroup.controllers': 'memory pids\n', 'cg/cgroup.subtree_control': 'memory pids\n' });
    assert.deepEqual(await detectCgroups({ ...h, fresh: true }), { kind: 'v2', base: h.cg('vman-vms') });
  });

  it('cgroup v2 without the memory controller: none, and why', async () => {
    const h = host({ 'proc/self/cgroup': '0::/user.slice\n', 'cg/cgroup.controllers': 'cpu io pids\n', 'cg/user.slice/': '' });
    const s = await detectCgroups({ ...h, fresh: true });
    assert.equal(s.kind, 'none');
    assert.match(describeCgroups(s), /^no cgroup for VMs .*offers no memory controller \(it offers: cpu io pids\)/);
    assert.ok(!existsSync(h.cg('vman-vms')));
  });

  it('cgroup v2 whose parent of vman\'s cgroup is not given pids: none, and why', async () => {
    const h = host({
      'proc/self/cgroup': '0::/a/b\n',
      'cg/cgroup.controllers': 'memory pids\n',
      'cg/a/cgroup.controllers': 'memory\n',
      'cg/a/b/': '',
    });
    const s = await detectCgroups({ ...h, fresh: true });
    assert.equal(s.kind, 'none');
    assert.match(s.kind === 'none' ? s.why : '', /\/cg\/a is not given pids by its parent/);
  });

  it('hybrid v1: VM cgroups under vman\'s own memory and pids cgroups, in vman/', async () => {
    const h = host({
      'proc/self/cgroup': HYBRID_SELF,
      'cg/memory/cgroup.procs': '',
      'cg/memory/process_api/abc/cgroup.procs': '',
      'cg/pids/cgroup.procs': '',
      'cg/unified/cgroup.controllers': '',
    });
    const s = await detectCgroups({ ...h, fresh: true });
    assert.deepEqual(s, { kind: 'v1', memoryBase: h.cg('memory/process_api/abc/vman'), pidsBase: h.cg('pids/vman') });
    assert.deepEqual(readdirSync(h.cg('memory/process_api/abc/vman')), []);
    assert.deepEqual(readdirSync(h.cg('pids/vman')), []);
    assert.equal(describeCgroups(s), `cgroup v1 memory and pids under ${h.cg('memory/process_api/abc/vman')} and ${h.cg('pids/vman')}`);
  });

  it('v1 in a container that sees its own subtree: paths taken relative to the mount\'s root', async () => {
    const h = host({ 'proc/self/cgroup': '5:memory:/docker/c1\n4:pids:/docker/c1/inner\n', 'cg/memory/': '', 'cg/pids/inner/': '' });
    writeFileSync(path.join(h.procRoot, 'self/mountinfo'), [
      `30 22 0:27 / ${h.cgroupRoot} rw,relatime - tmpfs tmpfs rw,mode=755`,
      `34 30 0:31 /docker/c1 ${h.cg('memory')} rw,relatime - cgroup cgroup rw,memory`,
      `38 30 0:35 /docker/c1 ${h.cg('pids')} rw,relatime master:7 - cgroup cgroup rw,pids`,
      '',
    ].join('\n'));
    assert.deepEqual(await detectCgroups({ ...h, fresh: true }), { kind: 'v1', memoryBase: h.cg('memory/vman'), pidsBase: h.cg('pids/inner/vman') });
  });

  it('v1 without a pids hierarchy, or with vman\'s cgroup not where it should be: none, and why', async () => {
    const noPids = host({ 'proc/self/cgroup': '4:memory:/\n0::/\n', 'cg/memory/': '' });
    const s1 = await detectCgroups({ ...noPids, fresh: true });
    assert.match(s1.kind === 'none' ? s1.why : s1.kind, /no cgroup v1 pids hierarchy/);
    const gone = host({ 'proc/self/cgroup': HYBRID_SELF, 'cg/memory/': '', 'cg/pids/': '' });
    const s2 = await detectCgroups({ ...gone, fresh: true });
    assert.match(s2.kind === 'none' ? s2.why : s2.kind, /vman's memory cgroup \/process_api\/abc is not to be found under .*\/cg\/memory/);
    assert.ok(!existsSync(gone.cg('pids/vman')), 'nothing is made when one hierarchy is missing');
  });

  it('no /proc/self/cgroup: none, and why', async () => {
    const h = host({ 'proc/': '' });
    const s = await detectCgroups({ ...h, fresh: true });
    assert.match(s.kind === 'none' ? s.why : s.kind, /ENOENT.*self\/cgroup/);
  });

  it('is cached per process unless asked fresh', async () => {
    const h = host({ 'proc/self/cgroup': '0::/\n', 'cg/cgroup.controllers': 'memory pids\n' });
    const first = await detectCgroups({ ...h, fresh: true });
    assert.equal(await detectCgroups(h), first);
    assert.notEqual(await detectCgroups({ ...h, fresh: true }), first);
  });
});

describe('VM cgroups on a fake v1 host', () => {
  it('sets the limits (memsw equal, move_charge on), reads them back, and reuses the cgroup', async () => {
    const h = host({ 'proc/self/cgroup': HYBRID_SELF, 'cg/memory/process_api/abc/': '', 'cg/pids/': '' });
    const s = await detectCgroups({ ...h, fresh: true });
    // What the kernel puts in a new memory cgroup.
    const leaf = h.cg(`memory/process_api/abc/vman/${VM}`);
    mkdirSync(leaf);
    for (const f of ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']) writeFileSync(path.join(leaf, f), '9223372036854771712\n');
    writeFileSync(path.join(leaf, 'memory.move_charge_at_immigrate'), '0\n');
    assert.equal(await readVmLimits(s, VM), undefined, 'no pids cgroup yet');

    const cg = await createVmCgroup(s, VM, limitsForTemplate(512));
    assert.deepEqual(cg.paths, [leaf, h.cg(`pids/vman/${VM}`)]);
    assert.equal(readFileSync(path.join(leaf, 'memory.memsw.limit_in_bytes'), 'utf8'), String(1024 * MiB));
    assert.equal(readFileSync(path.join(leaf, 'memory.move_charge_at_immigrate'), 'utf8'), '1');
    assert.deepEqual(await readVmLimits(s, VM), { memoryBytes: 1024 * MiB, pids: 256 });

    await createVmCgroup(s, VM, { memoryBytes: 2048 * MiB, pids: 64 });
    assert.deepEqual(await readVmLimits(s, VM), { memoryBytes: 2048 * MiB, pids: 64 });
    assert.equal(readFileSync(path.join(leaf, 'memory.memsw.limit_in_bytes'), 'utf8'), String(2048 * MiB));

    await cg.addProcess(12345);
    assert.equal(readFileSync(path.join(h.cg(`pids/vman/${VM}`), 'cgroup.procs'), 'utf8'), '12345');
    await assert.rejects(cg.addProcess(-1), RangeError);
  });

  it('reads "max" as Infinity', async () => {
    const h = host({ 'cg/base/vm-aaaaaaaaaaaa/memory.max': 'max\n', 'cg/base/vm-aaaaaaaaaaaa/pids.max': 'max\n' });
    assert.deepEqual(await readVmLimits({ kind: 'v2', base: h.cg('base') }, 'vm-aaaaaaaaaaaa'), { memoryBytes: Infinity, pids: Infinity });
  });
});

describe('VM cgroup arguments', () => {
  const nowhere = path.join(tmp, 'nowhere');
  const v2: CgroupSupport = { kind: 'v2', base: nowhere };

  it('refuses a VM id that is not an id before it reaches a path', async () => {
    await assert.rejects(createVmCgroup(v2, '../../etc', limitsForTemplate(64)), InvalidNameError);
    await assert.rejects(removeVmCgroup(v2, 'a/b'), InvalidNameError);
    await assert.rejects(readVmLimits(v2, '..'), InvalidNameError);
  });

  it('refuses limits that are not positive whole numbers', async () => {
    await assert.rejects(createVmCgroup(v2, VM, { memoryBytes: 0, pids: 10 }), RangeError);
    await assert.rejects(createVmCgroup(v2, VM, { memoryBytes: MiB, pids: 1.5 }), RangeError);
  });

  it('without cgroups: creating says why, removing and reading find nothing', async () => {
    const none: CgroupSupport = { kind: 'none', why: 'not root' };
    await assert.rejects(createVmCgroup(none, VM, limitsForTemplate(64)), /no cgroup for VM vm-0123456789ab: not root/);
    assert.equal(await removeVmCgroup(none, VM), true);
    assert.equal(await readVmLimits(none, VM), undefined);
    assert.equal(describeCgroups(none), 'no cgroup for VMs (no memory or pids limit): not root');
  });

  it('removing a cgroup that is not there is done', async () => {
    assert.equal(await removeVmCgroup(v2, VM), true);
    assert.equal(await removeVmCgroup({ kind: 'v1', memoryBase: nowhere, pidsBase: tmp }, VM), true);
  });

  it('limits from a template: its memory plus QEMU\'s overhead, and the pids cap', () => {
    assert.equal(QEMU_MEMORY_OVERHEAD_MB, 512);
    assert.deepEqual(limitsForTemplate(512), { memoryBytes: 1024 * MiB, pids: QEMU_PIDS_MAX });
    assert.throws(() => limitsForTemplate(0), RangeError);
    assert.throws(() => limitsForTemplate(1.5), RangeError);
  });

  it('parses /proc/<pid>/cgroup, colons in paths included', () => {
    assert.deepEqual(parseProcCgroup('9:name=systemd:/\n4:memory:/a:b\n2:cpu,cpuacct:/x\n0::/\n'), [
      { hierarchy: '9', controllers: ['name=systemd'], path: '/' },
      { hierarchy: '4', controllers: ['memory'], path: '/a:b' },
      { hierarchy: '2', controllers: ['cpu', 'cpuacct'], path: '/x' },
      { hierarchy: '0', controllers: [], path: '/' },
    ]);
  });
});

describe('VM cgroups on this host', () => {
  const root = process.getuid?.() === 0;

  it('detect, create, move a process in, read back, remove', { skip: root ? false : 'not root: cannot make cgroups', timeout: 30_000 }, async (t) => {
    const own = await processCgroups(process.pid);
    const line = (c: string) => own.find((l) => (c === '' ? l.hierarchy === '0' : l.controllers.includes(c)));
    // Where VM cgroups are expected, worked out here on its own (mounts showing the whole hierarchy).
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
    const vmPath = (c: string) => v2
      ? path.posix.join(path.posix.dirname(line('')!.path), 'vman-vms', VM)
      : path.posix.join(line(c)!.path, 'vman', VM);
    const bases = v2
      ? [path.join('/sys/fs/cgroup', path.posix.dirname(vmPath('')))]
      : ['memory', 'pids'].map((c) => path.join('/sys/fs/cgroup', c, path.posix.dirname(vmPath(c))));
    const madeHere = bases.filter((b) => !existsSync(b));

    const s = await detectCgroups({ fresh: true });
    t.diagnostic(describeCgroups(s));
    assert.notEqual(s.kind, 'none', describeCgroups(s));
    assert.deepEqual(s.kind === 'v2' ? [s.base] : s.kind === 'v1' ? [s.memoryBase, s.pidsBase] : [], bases);

    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    try {
      const limits = limitsForTemplate(64);
      const cg = await createVmCgroup(s, VM, limits);
      await cg.addProcess(child.pid!);
      const where = await processCgroups(child.pid!);
      for (const c of v2 ? [''] : ['memory', 'pids']) {
        const l = where.find((w) => (c === '' ? w.hierarchy === '0' : w.controllers.includes(c)));
        assert.equal(l?.path, vmPath(c), `the child's ${c || 'v2'} cgroup`);
      }
      assert.deepEqual(await readVmLimits(s, VM), limits);
      if (s.kind === 'v1') {
        const memsw = path.join(cg.paths[0]!, 'memory.memsw.limit_in_bytes');
        if (existsSync(memsw)) assert.equal(readFileSync(memsw, 'utf8').trim(), String(limits.memoryBytes));
        // 0 where the kernel no longer moves charges (Linux 6.13 and later refuse the 1).
        const moveCharge = readFileSync(path.join(cg.paths[0]!, 'memory.move_charge_at_immigrate'), 'utf8').trim();
        assert.ok(['0', '1'].includes(moveCharge), moveCharge);
        t.diagnostic(`memory.move_charge_at_immigrate reads ${moveCharge}`);
      }
      // Reused: raised (memsw first on v1), then lowered (memsw last).
      for (const mb of [512, 128]) {
        await createVmCgroup(s, VM, limitsForTemplate(mb));
        assert.deepEqual(await readVmLimits(s, VM), limitsForTemplate(mb));
      }
      assert.equal(await removeVmCgroup(s, VM, 200), false, 'not removed while a process is in it');

      child.kill('SIGKILL');
      await exited;
      assert.equal(await removeVmCgroup(s, VM), true);
      for (const p of cg.paths) assert.ok(!existsSync(p), `${p} is gone`);
      assert.equal(await readVmLimits(s, VM), undefined);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      await removeVmCgroup(s, VM);
      // Leave the host as found: the bases only if this test made them (and they are empty).
      for (const b of madeHere) {
        try {
          rmdirSync(b);
        } catch {
          // not empty: not ours to remove
        }
      }
    }
  });
});
