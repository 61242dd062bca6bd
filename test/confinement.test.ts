import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync, closeSync, constants, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  Confinement,
  copyVmFile,
  DEFAULT_UID_RANGE,
  openVmFile,
  parseUidRange,
  SANDBOX_OPTION,
  type LaunchFiles,
  type QemuIdentity,
} from '../src/operator/confinement.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vman-confinement-test-'));
// As vman's storage would be: any user may pass, nobody may list.
chmodSync(tmp, 0o711);
after(() => rmSync(tmp, { recursive: true, force: true }));

const root = process.getuid?.() === 0;
const rootOnly = { skip: root ? false : 'not root: cannot chown files to a VM\'s uid or set ACLs for it' };
const U: QemuIdentity = { uid: 1_879_113_000, gid: 1_879_113_000 };
const O: QemuIdentity = { uid: 1_879_113_001, gid: 1_879_113_001 };
const NONE = { kind: 'none', why: 'test' } as const;
const RANGE_MESSAGE = 'expected FIRST-LAST, 1000 <= FIRST <= LAST < 4294967295';

let n = 0;
/** A fresh folder of this run's temp dir. */
function dir(name = `d-${++n}`, mode = 0o700): string {
  const d = path.join(tmp, name);
  mkdirSync(d, { recursive: true });
  chmodSync(d, mode);
  return d;
}

/** `<tmp>/<name>` with `vms/` in it, both passable (0711): a storage path. */
function storage(name: string): string {
  const st = dir(name, 0o711);
  dir(path.join(name, 'vms'), 0o711);
  return st;
}

function vmDir(st: string, id: string, mode = 0o700): string {
  const d = path.join(st, 'vms', id);
  mkdirSync(d, { recursive: true });
  chmodSync(d, mode);
  return d;
}

function file(p: string, text: string, mode = 0o600): string {
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

function qemuImg(...args: string[]): void {
  execFileSync('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function backingNameOf(image: string): string | undefined {
  const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', image], { encoding: 'utf8' })) as { 'backing-filename'?: string };
  return info['backing-filename'];
}

function launchFiles(st: string, d: string, more: Partial<LaunchFiles> = {}): LaunchFiles {
  return { storagePath: st, dir: d, serialLog: path.join(d, 'serial.log'), writable: [], readOnly: [], sharedImages: [], ...more };
}

function owner(p: string): { uid: number; gid: number; mode: number } {
  const s = lstatSync(p);
  return { uid: s.uid, gid: s.gid, mode: s.mode & 0o7777 };
}

/** A file's ACL as getfacl prints it: `user:1234` → `r--`, `mask` → `--x`, and what is effective. */
interface Acl {
  entries: Map<string, string>;
  effective: Map<string, string>;
  text: string;
}

function getAcl(p: string): Acl {
  const text = execFileSync('getfacl', ['-p', '-n', p], { encoding: 'utf8' });
  const entries = new Map<string, string>();
  const effective = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [entry = '', comment] = line.split('\t').map((s) => s.trim()).filter((s) => s !== '') as [string, string?];
    const parts = entry.split(':');
    const perms = parts.pop() ?? '';
    const key = parts[1] === '' ? parts[0]! : parts.join(':');
    entries.set(key, perms);
    const eff = comment ? /#effective:(\S+)/.exec(comment)?.[1] : undefined;
    effective.set(key, eff ?? perms);
  }
  return { entries, effective, text };
}

/**
 * Whether `p` settles within `ms`; if not, `unblock` frees whatever holds it
 * (a FIFO's other end opened) so that no thread of the pool stays stuck.
 */
async function settlesWithin(p: Promise<unknown>, ms: number, unblock: () => void): Promise<boolean> {
  const outcome = p.then(() => true, () => true);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  const settled = await Promise.race([outcome, late]);
  clearTimeout(timer);
  if (!settled) {
    unblock();
    await outcome;
  }
  return settled;
}

function mkfifo(p: string): string {
  execFileSync('mkfifo', ['-m', '600', p]);
  return p;
}

/** Opens a FIFO's other end for a moment, without waiting: a thread blocked in open() on it goes on. */
function poke(fifo: string, flags: number): void {
  try {
    closeSync(openSync(fifo, flags | constants.O_NONBLOCK));
  } catch {
    // nobody at the other end after all
  }
}

describe('parseUidRange', () => {
  it('accepts FIRST-LAST within 1000..4294967294', () => {
    assert.deepEqual(parseUidRange('1879048192-1879113727'), { first: 1_879_048_192, last: 1_879_113_727 });
    assert.deepEqual(parseUidRange(' 1000-1000 '), { first: 1000, last: 1000 });
    assert.deepEqual(parseUidRange('1000-4294967294'), { first: 1000, last: 4_294_967_294 });
  });

  it('refuses what is not a range, a reversed one, one below 1000 or one reaching 4294967295, saying what it expects', () => {
    for (const text of ['5-1', 'abc', '100-200', '1-4294967295', '1000-4294967295', '2000-1999', '', '1000', '-1000-2000', '1000 - 2000']) {
      assert.throws(() => parseUidRange(text), { message: `invalid uid range ${JSON.stringify(text)}: ${RANGE_MESSAGE}` }, text);
    }
  });

  it('the default range is the one documented', () => {
    assert.deepEqual(DEFAULT_UID_RANGE, parseUidRange('1879048192-1879113727'));
  });
});

describe('Confinement modes', () => {
  it('as root: a user per VM from the default range, refused without cgroups unless VMAN_ALLOW_UNLIMITED', async () => {
    const c = await Confinement.create({ euid: 0, cgroups: NONE });
    assert.deepEqual(c.mode, { kind: 'per-vm-user', range: DEFAULT_UID_RANGE });
    assert.equal(c.perVmUser, true);
    assert.equal(c.storageDirMode, 0o711);
    assert.ok(c.refusal);
    assert.match(c.refusal, /VMAN_ALLOW_UNLIMITED=1/);
    assert.match(c.refusal, /\(test\)/);
    assert.deepEqual(c.summary(), {
      mode: 'per-vm-user',
      user: 'each VM\'s QEMU runs as its own user, uid 1879048192-1879113727, without capabilities',
      sandbox: `-sandbox ${SANDBOX_OPTION}`,
      limits: 'none: test',
      refusal: c.refusal,
    });

    const allowed = await Confinement.create({ euid: 0, cgroups: NONE, allowUnlimited: true });
    assert.equal(allowed.refusal, undefined);
    assert.equal(allowed.summary().refusal, null);
    assert.equal(allowed.summary().limits, 'none: test (allowed by VMAN_ALLOW_UNLIMITED=1)');
  });

  it('as root with cgroups: no refusal, the limits described', async () => {
    const c = await Confinement.create({ euid: 0, cgroups: { kind: 'v2', base: '/sys/fs/cgroup/vman-vms' } });
    assert.equal(c.refusal, undefined);
    assert.equal(c.summary().refusal, null);
    assert.equal(c.summary().limits, 'cgroup v2 memory and pids under /sys/fs/cgroup/vman-vms');
  });

  it('a uid range of its own', async () => {
    const c = await Confinement.create({ euid: 0, cgroups: NONE, uidRange: { first: 5000, last: 5009 } });
    assert.deepEqual(c.mode, { kind: 'per-vm-user', range: { first: 5000, last: 5009 } });
    assert.match(c.summary().user, /uid 5000-5009/);
  });

  it('as an ordinary user: QEMU runs as vman\'s user, nothing to allocate, storage 0700', async () => {
    const c = await Confinement.create({ euid: 1000, cgroups: NONE });
    assert.equal(c.mode.kind, 'vman-user');
    assert.equal(c.mode.kind === 'vman-user' ? c.mode.uid : undefined, 1000);
    assert.equal(c.perVmUser, false);
    assert.equal(c.allocate(new Set()), undefined);
    assert.equal(c.storageDirMode, 0o700);
    const s = c.summary();
    assert.equal(s.mode, 'vman-user');
    assert.match(s.user, /^QEMU runs as vman's own user \(uid 1000\): vman does not run as root/);
    assert.equal(s.sandbox, `-sandbox ${SANDBOX_OPTION}`);
    assert.match(s.refusal ?? '', /VMAN_ALLOW_UNLIMITED=1/);
  });

  it('as an ordinary user, the launch and disk calls touch nothing', async () => {
    const c = await Confinement.create({ euid: 1000, cgroups: NONE });
    const d = dir();
    const disk = file(path.join(d, 'disk.qcow2'), 'x', 0o644);
    await c.prepareLaunch(undefined, launchFiles(tmp, d, { writable: [disk] }));
    assert.ok(!existsSync(path.join(d, 'serial.log')), 'no serial log made');
    await c.grantDisk(disk, undefined);
    await c.grantSocket(disk, undefined);
    await c.forget(U, [disk], tmp);
    assert.equal(owner(disk).mode, 0o644);
    assert.equal(owner(d).mode, 0o700);
  });

  it('sandboxOnly: vman\'s own user, never refused', () => {
    const c = Confinement.sandboxOnly();
    assert.equal(c.mode.kind, 'vman-user');
    assert.equal(c.refusal, undefined);
    assert.deepEqual(c.qemuArgs(), ['-sandbox', SANDBOX_OPTION]);
  });
});

describe('allocate', () => {
  it('the lowest free uid of the range, its gid the same', async () => {
    const c = await Confinement.create({ euid: 0, cgroups: NONE });
    const first = DEFAULT_UID_RANGE.first;
    assert.deepEqual(c.allocate(new Set()), { uid: first, gid: first });
    assert.deepEqual(c.allocate(new Set([first, first + 1])), { uid: first + 2, gid: first + 2 });
    assert.deepEqual(c.allocate(new Set([first + 1, 1000, 0])), { uid: first, gid: first });
  });

  it('throws when every uid of the range is held', async () => {
    const c = await Confinement.create({ euid: 0, cgroups: NONE, uidRange: { first: 5000, last: 5001 } });
    assert.deepEqual(c.allocate(new Set([5000])), { uid: 5001, gid: 5001 });
    assert.throws(() => c.allocate(new Set([5000, 5001])), { message: 'every uid of the range 5000-5001 is held by a VM: widen VMAN_QEMU_UID_RANGE' });
  });
});

describe('qemuArgs', () => {
  it('is the sandbox option as libvirt sets it, and nothing else', async () => {
    for (const c of [await Confinement.create({ euid: 0, cgroups: NONE }), await Confinement.create({ euid: 1000, cgroups: NONE })]) {
      assert.deepEqual(c.qemuArgs(), ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    }
  });
});

describe('openVmFile and copyVmFile never follow a symbolic link', () => {
  const d = dir('links');
  const secretDir = dir('links-secret');
  const secret = file(path.join(secretDir, 'secret'), 'top secret\n', 0o600);
  const planted = path.join(d, 'serial.log');
  symlinkSync(secret, planted);

  it('openVmFile refuses a link, for reading and for appending, even a dangling one', async () => {
    await assert.rejects(openVmFile(planted), { code: 'ELOOP' });
    await assert.rejects(openVmFile(planted, 'a'), { code: 'ELOOP' });
    const dangling = path.join(d, 'dangling.log');
    const target = path.join(secretDir, 'would-be-made');
    symlinkSync(target, dangling);
    await assert.rejects(openVmFile(dangling, 'a'), { code: 'ELOOP' });
    assert.ok(!existsSync(target));
    assert.equal(readFileSync(secret, 'utf8'), 'top secret\n');
  });

  it('openVmFile opens a plain file, and makes one 0600 for appending', async () => {
    const log = path.join(d, 'plain.log');
    const h = await openVmFile(log, 'a');
    await h.write('one\n');
    await h.close();
    assert.equal(owner(log).mode, 0o600);
    const r = await openVmFile(log);
    assert.equal(await r.readFile('utf8'), 'one\n');
    await r.close();
  });

  it('copyVmFile from a link: refused, the destination not made', async () => {
    const to = path.join(tmp, 'copied-from-link');
    await assert.rejects(copyVmFile(planted, to), { code: 'ELOOP' });
    await assert.rejects(copyVmFile(planted, to, { exclusive: true }), { code: 'ELOOP' });
    assert.ok(!existsSync(to));
  });

  it('copyVmFile to a link: refused, its target unchanged', async () => {
    const from = file(path.join(d, 'disk.img'), 'guest data\n');
    const victimDir = dir();
    const victim = file(path.join(victimDir, 'victim'), 'host file\n', 0o644);
    const link = path.join(d, 'to-link');
    symlinkSync(victim, link);
    await assert.rejects(copyVmFile(from, link), { code: 'ELOOP' });
    await assert.rejects(copyVmFile(from, link, { exclusive: true }));
    assert.equal(readFileSync(victim, 'utf8'), 'host file\n');
    assert.equal(owner(victim).mode, 0o644);
    assert.ok(lstatSync(link).isSymbolicLink());
  });

  it('a plain copy: the bytes, mode 0600; over an existing file it replaces it; exclusive refuses one', async () => {
    const from = file(path.join(d, 'data.img'), Buffer.alloc(300_000, 7).toString('latin1') + 'end');
    const to = path.join(dir(), 'copy.img');
    await copyVmFile(from, to);
    assert.deepEqual(readFileSync(to), readFileSync(from));
    assert.equal(owner(to).mode, 0o600);

    writeFileSync(to, 'something much longer than what comes now, which must not stay at its end '.repeat(10_000));
    const small = file(path.join(d, 'small.img'), 'small');
    await copyVmFile(small, to);
    assert.equal(readFileSync(to, 'utf8'), 'small');

    await assert.rejects(copyVmFile(from, to, { exclusive: true }), { code: 'EEXIST' });
    assert.equal(readFileSync(to, 'utf8'), 'small');
    const fresh = path.join(path.dirname(to), 'fresh.img');
    await copyVmFile(from, fresh, { exclusive: true });
    assert.deepEqual(readFileSync(fresh), readFileSync(from));
    assert.equal(owner(fresh).mode, 0o600);
  });

  it('the copy is 0600 whatever the source\'s mode: no set-user-ID bit or exec bits carried over from a VM\'s file', async () => {
    const from = file(path.join(d, 'suid.img'), '#!/bin/sh\nid\n', 0o4755);
    const to = path.join(dir(), 'suid-copy.img');
    await copyVmFile(from, to, { exclusive: true });
    assert.equal(owner(to).mode, 0o600);
  });

  it('a FIFO planted at a VM file\'s name: copyVmFile does not hang on it, refuses it, makes no copy', async () => {
    const fifo = mkfifo(path.join(d, 'fifo.log'));
    const to = path.join(dir(), 'from-fifo');
    const copy = copyVmFile(fifo, to);
    const settled = await settlesWithin(copy, 2000, () => poke(fifo, constants.O_WRONLY));
    assert.ok(settled, 'copyVmFile from a FIFO was still waiting after 2 s');
    await assert.rejects(copy, { message: `${fifo} is not a regular file; vman copies none other out of a VM's folder` });
    assert.ok(!existsSync(to));
    await assert.rejects(copyVmFile(fifo, to, { exclusive: true }), /is not a regular file/);
    assert.ok(!existsSync(to));
  });

  it('a folder or a device at a VM file\'s name: refused, no copy', async () => {
    const sub = dir(path.join('links', 'sub'));
    const to = path.join(dir(), 'from-other');
    await assert.rejects(copyVmFile(sub, to), /is not a regular file/);
    await assert.rejects(copyVmFile('/dev/zero', to), /is not a regular file/);
    assert.ok(!existsSync(to));
  });
});

describe('prepareLaunch, disks and ACLs as root', rootOnly, () => {
  const st = storage('st');
  const confinement = () => Confinement.create({ euid: 0, cgroups: NONE, allowUnlimited: true });

  it('the VM\'s folder, serial log and files become the VM user\'s, with their modes', async () => {
    const c = await confinement();
    const d = vmDir(st, 'vm-0123456789ab');
    const rootDisk = file(path.join(d, 'root.qcow2'), 'overlay', 0o644);
    const data = file(path.join(d, 'data.raw'), 'data', 0o666);
    const seed = file(path.join(d, 'seed.iso'), 'seed', 0o644);
    await c.prepareLaunch(U, launchFiles(st, d, { writable: [rootDisk, data], readOnly: [seed] }));
    assert.deepEqual(owner(d), { ...U, mode: 0o700 });
    assert.deepEqual(owner(path.join(d, 'serial.log')), { ...U, mode: 0o600 });
    assert.deepEqual(owner(rootDisk), { ...U, mode: 0o600 });
    assert.deepEqual(owner(data), { ...U, mode: 0o600 });
    assert.deepEqual(owner(seed), { ...U, mode: 0o400 });
    // Again, as each start does: the same, an existing serial log kept.
    writeFileSync(path.join(d, 'serial.log'), 'boot\n');
    await c.prepareLaunch(U, launchFiles(st, d, { writable: [rootDisk, data], readOnly: [seed] }));
    assert.equal(readFileSync(path.join(d, 'serial.log'), 'utf8'), 'boot\n');
    assert.deepEqual(owner(d), { ...U, mode: 0o700 });
    assert.deepEqual(owner(seed), { ...U, mode: 0o400 });
  });

  it('a VM folder open to others loses their bits (its group bits, an ACL mask, stay)', async () => {
    const c = await confinement();
    const d = vmDir(st, 'vm-0123456789ac', 0o755);
    await c.prepareLaunch(U, launchFiles(st, d));
    const o = owner(d);
    assert.deepEqual({ uid: o.uid, gid: o.gid }, U);
    assert.equal(o.mode & 0o7707, 0o700);
  });

  it('a writable file that is a symbolic link: refused, the link\'s target keeps its owner', async () => {
    const c = await confinement();
    const d = vmDir(st, 'vm-0123456789ad');
    const secret = file(path.join(dir(), 'shadow'), 'root:x:0:\n', 0o600);
    const link = path.join(d, 'root.qcow2');
    symlinkSync(secret, link);
    await assert.rejects(c.prepareLaunch(U, launchFiles(st, d, { writable: [link] })), /symbolic link/);
    assert.deepEqual(owner(secret), { uid: 0, gid: 0, mode: 0o600 });
    // A read-only file likewise.
    await assert.rejects(c.prepareLaunch(U, launchFiles(st, d, { readOnly: [link] })), /symbolic link/);
    assert.deepEqual(owner(secret), { uid: 0, gid: 0, mode: 0o600 });
  });

  it('a serial log that is a symbolic link, dangling or not: refused, nothing made or changed where it points', async () => {
    const c = await confinement();
    const d = vmDir(st, 'vm-0123456789ae');
    const target = path.join(dir(), 'nologin');
    symlinkSync(target, path.join(d, 'serial.log'));
    await assert.rejects(c.prepareLaunch(U, launchFiles(st, d)), { code: 'ELOOP' });
    assert.ok(!existsSync(target), `${target} was made by following the planted link`);

    const d2 = vmDir(st, 'vm-0123456789b1');
    const existing = file(path.join(dir(), 'passwd'), 'root:x:0:0::/root:/bin/sh\n', 0o644);
    symlinkSync(existing, path.join(d2, 'serial.log'));
    await assert.rejects(c.prepareLaunch(U, launchFiles(st, d2)), { code: 'ELOOP' });
    assert.deepEqual(owner(existing), { uid: 0, gid: 0, mode: 0o644 });
    assert.equal(readFileSync(existing, 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  });

  it('a FIFO planted as the serial log: prepareLaunch does not hang on it, and refuses it (no reader: ENXIO)', async () => {
    const c = await confinement();
    const d = vmDir(st, 'vm-0123456789af');
    const fifo = mkfifo(path.join(d, 'serial.log'));
    const launch = c.prepareLaunch(U, launchFiles(st, d));
    const settled = await settlesWithin(launch, 2000, () => poke(fifo, constants.O_RDONLY));
    assert.ok(settled, 'prepareLaunch was still waiting on the FIFO after 2 s');
    await assert.rejects(launch, { code: 'ENXIO' });
  });

  it('a FIFO planted as a writable disk: prepareLaunch does not hang on it (no header is read)', async () => {
    const c = await confinement();
    const d = vmDir(st, 'vm-0123456789b0');
    const fifo = mkfifo(path.join(d, 'root.qcow2'));
    const launch = c.prepareLaunch(U, launchFiles(st, d, { writable: [fifo] }));
    const settled = await settlesWithin(launch, 2000, () => poke(fifo, constants.O_WRONLY));
    assert.ok(settled, 'prepareLaunch was still waiting on the FIFO after 2 s');
    await launch;
  });

  it('a VM folder its user cannot reach: refused, nothing changed', async () => {
    const c = await confinement();
    const closed = dir('closed', 0o711);
    dir(path.join('closed', 'vms'), 0o700);
    const d = vmDir(closed, 'vm-0123456789ab');
    await assert.rejects(c.prepareLaunch(U, launchFiles(closed, d)), new RegExp(`cannot pass ${path.join(closed, 'vms')} \\(mode 700\\)`));
    assert.deepEqual(owner(d), { uid: 0, gid: 0, mode: 0o700 });
    assert.ok(!existsSync(path.join(d, 'serial.log')));
  });

  it('grantDisk and releaseDisk: the VM\'s while attached, vman\'s after, 0600 both', async () => {
    const c = await confinement();
    const d = dir();
    const disk = file(path.join(d, 'disk.qcow2'), 'disk', 0o600);
    await c.grantDisk(disk, U);
    assert.deepEqual(owner(disk), { ...U, mode: 0o600 });
    await c.releaseDisk(disk);
    assert.deepEqual(owner(disk), { uid: 0, gid: 0, mode: 0o600 });

    const open = file(path.join(d, 'new.qcow2'), 'new', 0o644);
    await c.releaseDisk(open);
    assert.deepEqual(owner(open), { uid: 0, gid: 0, mode: 0o600 });
    await c.grantDisk(open, undefined);
    assert.deepEqual(owner(open), { uid: 0, gid: 0, mode: 0o600 });
    await c.releaseDisk(path.join(d, 'gone.qcow2'));

    const secret = file(path.join(d, 'secret'), 's', 0o644);
    const link = path.join(d, 'link.qcow2');
    symlinkSync(secret, link);
    await assert.rejects(c.grantDisk(link, U), /symbolic link/);
    await assert.rejects(c.releaseDisk(link), /symbolic link/);
    assert.deepEqual(owner(secret), { uid: 0, gid: 0, mode: 0o644 });
  });

  /** `<st>/vms/<vm>/snapshots/<snap>/root.qcow2`, as vman makes one: a qcow2, vman's, 0600, in a 0700 folder. */
  function snapshotImage(st: string, vm: string, snap: string): string {
    const d = path.join(vmDir(st, vm), 'snapshots', snap);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const image = path.join(d, 'root.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', image, '1M');
    chmodSync(image, 0o600);
    return image;
  }

  /** A clone's folder with its root overlay over `image`, as vman makes one. */
  function cloneOf(st: string, vm: string, image: string): { dir: string; root: string } {
    const d = vmDir(st, vm);
    const root = path.join(d, 'root.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-b', image, '-F', 'qcow2', root);
    return { dir: d, root };
  }

  function refusal(image: string, real = image): string {
    return `${image} is not a snapshot image of this storage as vman made it (it resolves to ${real}): no VM is given it`;
  }

  /** No entry for `who` on any of `paths` (nor on what they point at). */
  function noEntryFor(who: QemuIdentity, ...paths: string[]): void {
    for (const p of paths) assert.equal(getAcl(p).entries.get(`user:${who.uid}`), undefined, `${p}:\n${getAcl(p).text}`);
  }

  it('a clone reads its origin\'s snapshot image through ACLs: granted once, kept through the origin\'s start, taken back by forget', async () => {
    const c = await confinement();
    const sa = storage('st-acl');
    const snapImage = snapshotImage(sa, 'vm-aaaaaaaaaaaa', 'snap-1');
    const snap = path.dirname(snapImage);
    const snapshots = path.dirname(snap);
    const origin = path.dirname(snapshots);
    const originRoot = path.join(origin, 'root.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', originRoot, '1M');
    const { dir: clone, root: cloneRoot } = cloneOf(sa, 'vm-bbbbbbbbbbbb', snapImage);
    assert.equal(backingNameOf(cloneRoot), snapImage);
    const key = `user:${U.uid}`;
    const passed = [snap, snapshots, origin];
    const files = launchFiles(sa, clone, { writable: [cloneRoot], sharedImages: [snapImage] });

    // Without the image in sharedImages, the overlay's header grants nothing.
    await c.prepareLaunch(U, launchFiles(sa, clone, { writable: [cloneRoot] }));
    noEntryFor(U, snapImage, ...passed);

    await c.prepareLaunch(U, files);
    assert.equal(getAcl(snapImage).entries.get(key), 'r--');
    assert.equal(getAcl(snapImage).effective.get(key), 'r--');
    for (const p of passed) {
      assert.equal(getAcl(p).entries.get(key), '--x', p);
      assert.equal(getAcl(p).effective.get(key), '--x', p);
    }
    assert.equal(getAcl(path.join(sa, 'vms')).entries.get(key), undefined, 'vms/ is passable already, given no entry');
    assert.equal(getAcl(sa).entries.get(key), undefined);
    noEntryFor(O, snapImage, ...passed);
    assert.deepEqual(owner(snapImage), { uid: 0, gid: 0, mode: owner(snapImage).mode }, 'the snapshot image stays vman\'s');
    assert.equal(owner(snapImage).mode & 0o707, 0o600, 'nobody else may read it');
    assert.deepEqual(owner(cloneRoot), { ...U, mode: 0o600 });

    // Each start does it again: nothing changes.
    const before = [snapImage, ...passed].map((p) => [getAcl(p).text, owner(p)]);
    await c.prepareLaunch(U, files);
    assert.deepEqual([snapImage, ...passed].map((p) => [getAcl(p).text, owner(p)]), before);

    // The origin starts as its own user: its folder becomes its own, 0700, and the clone may still pass it.
    await c.prepareLaunch(O, launchFiles(sa, origin, { writable: [originRoot] }));
    const o = owner(origin);
    assert.deepEqual({ uid: o.uid, gid: o.gid }, O);
    assert.equal(o.mode & 0o707, 0o700);
    const originAcl = getAcl(origin);
    assert.equal(originAcl.entries.get(key), '--x');
    assert.equal(originAcl.effective.get(key), '--x', originAcl.text);
    assert.match(originAcl.entries.get('mask') ?? '', /x$/, originAcl.text);
    assert.equal(originAcl.entries.get('other'), '---');
    assert.equal(getAcl(snapImage).effective.get(key), 'r--');

    // Forgetting nobody, or in a vman-user mode, or nothing, changes nothing.
    await c.forget(null, [snapImage], sa);
    await (await Confinement.create({ euid: 1000, cgroups: NONE })).forget(U, [snapImage], sa);
    await c.forget(U, [], sa);
    assert.equal(getAcl(snapImage).entries.get(key), 'r--');
    // Another VM's uid forgotten: this one's entries stay.
    await c.forget(O, [snapImage], sa);
    assert.equal(getAcl(snapImage).entries.get(key), 'r--');
    assert.equal(getAcl(origin).entries.get(key), '--x');

    await c.forget(U, [snapImage], sa);
    noEntryFor(U, snapImage, ...passed);
    // Again: done already, no error.
    await c.forget(U, [snapImage], sa);
  });

  it('a clone of a clone: every snapshot image of the chain granted, each in its own VM\'s folder, and all taken back', async () => {
    const c = await confinement();
    const sc = storage('st-chain');
    const first = snapshotImage(sc, 'vm-a1a1a1a1a1a1', 'snap-a');
    // The first clone's snapshot: an overlay over the first snapshot image, as a snapshot of a clone is.
    const middle = snapshotImage(sc, 'vm-b2b2b2b2b2b2', 'snap-b');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', first, '-F', 'qcow2', middle, '1M');
    const { dir: clone, root } = cloneOf(sc, 'vm-c3c3c3c3c3c3', middle);
    const folders = (image: string) => [path.dirname(image), path.dirname(path.dirname(image)), path.dirname(path.dirname(path.dirname(image)))];

    await c.prepareLaunch(U, launchFiles(sc, clone, { writable: [root], sharedImages: [middle, first] }));
    for (const image of [middle, first]) {
      assert.equal(getAcl(image).effective.get(`user:${U.uid}`), 'r--', image);
      for (const p of folders(image)) assert.equal(getAcl(p).effective.get(`user:${U.uid}`), '--x', p);
    }
    noEntryFor(U, path.join(sc, 'vms'), clone);

    await c.forget(U, [middle, first], sc);
    noEntryFor(U, middle, first, ...folders(middle), ...folders(first));
  });

  it('a shared image not there: refused when granted, skipped when forgotten', async () => {
    const c = await confinement();
    const sg = storage('st-gone');
    const gone = path.join(vmDir(sg, 'vm-f0f0f0f0f0f0'), 'snapshots', 'snap-gone', 'root.qcow2');
    const clone = vmDir(sg, 'vm-f1f1f1f1f1f1');
    await assert.rejects(c.prepareLaunch(U, launchFiles(sg, clone, { sharedImages: [gone] })), { message: refusal(gone, 'nothing') });
    await c.forget(U, [gone], sg);
    noEntryFor(U, path.join(sg, 'vms', 'vm-f0f0f0f0f0f0'));
  });

  it('a shared image reached through a link (a linked folder, or the image a link itself): refused, no ACL lands on what the link points at', async () => {
    const c = await confinement();
    const se = storage('st-escape');
    const hostDir = dir('host-secrets', 0o700);
    const shadow = file(path.join(hostDir, 'shadow'), 'root:$6$hash:19000::::::\n', 0o600);
    mkdirSync(path.join(hostDir, 'snap-1'), { mode: 0o700 });
    const hostImage = file(path.join(hostDir, 'snap-1', 'root.qcow2'), 'host image', 0o600);
    const clone = vmDir(se, 'vm-cccccccccccc');

    // The origin's user owns its VM folder: it may put a link where its snapshots folder was.
    const origin = vmDir(se, 'vm-c0c0c0c0c0c0');
    symlinkSync(hostDir, path.join(origin, 'snapshots'));
    const throughFolder = path.join(origin, 'snapshots', 'snap-1', 'root.qcow2');
    await assert.rejects(c.prepareLaunch(U, launchFiles(se, clone, { sharedImages: [throughFolder] })), { message: refusal(throughFolder, hostImage) });

    // Or a link in place of the image.
    const snap2 = path.join(vmDir(se, 'vm-c1c1c1c1c1c1'), 'snapshots', 'snap-2');
    mkdirSync(snap2, { recursive: true, mode: 0o700 });
    const linkImage = path.join(snap2, 'root.qcow2');
    symlinkSync(shadow, linkImage);
    await assert.rejects(c.prepareLaunch(U, launchFiles(se, clone, { sharedImages: [linkImage] })), { message: refusal(linkImage, shadow) });

    // Or `..` on the way out of the storage.
    const dotted = `${path.join(se, 'vms', 'vm-c1c1c1c1c1c1', 'snapshots', 'snap-2')}/../../../../../host-secrets/shadow`;
    await assert.rejects(c.prepareLaunch(U, launchFiles(se, clone, { sharedImages: [dotted] })), /is not a snapshot image of this storage as vman made it/);

    noEntryFor(U, shadow, hostDir, hostImage, path.join(hostDir, 'snap-1'), snap2, path.dirname(snap2));
    assert.deepEqual(owner(shadow), { uid: 0, gid: 0, mode: 0o600 });
    assert.deepEqual(owner(hostImage), { uid: 0, gid: 0, mode: 0o600 });

    // What an escaped QEMU may write in the header of its own overlay (its user owns it) grants nothing: grants come from the records only.
    symlinkSync(hostDir, path.join(clone, 'escape'));
    const overlay = path.join(clone, 'root.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'escape/shadow', '-F', 'raw', overlay, '1M');
    await c.prepareLaunch(U, launchFiles(se, clone, { writable: [overlay] }));
    noEntryFor(U, shadow, hostDir);
  });

  it('a shared image that is not in a snapshot folder of this storage (another VM\'s own disk, ...): refused, no ACL on it', async () => {
    const c = await confinement();
    const sv = storage('st-victim');
    const victim = vmDir(sv, 'vm-dddddddddddd');
    const victimDisk = path.join(victim, 'root.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', victimDisk, '1M');
    chmodSync(victimDisk, 0o600);
    const d = vmDir(sv, 'vm-eeeeeeeeeeee');

    await assert.rejects(c.prepareLaunch(U, launchFiles(sv, d, { sharedImages: [victimDisk] })), { message: refusal(victimDisk) });

    const snapshots = path.join(victim, 'snapshots');
    mkdirSync(path.join(snapshots, 'snap-1', 'deeper'), { recursive: true, mode: 0o700 });
    mkdirSync(path.join(victim, 'other', 'snap-1'), { recursive: true, mode: 0o700 });
    const templates = dir(path.join('st-victim', 'images'), 0o700);
    const elsewhere = storage('st-elsewhere');
    const foreign = snapshotImage(elsewhere, 'vm-dddddddddddd', 'snap-1');
    const wrong = [
      file(path.join(snapshots, 'loose.qcow2'), 'x'), // in snapshots/, no snapshot folder
      file(path.join(snapshots, 'snap-1', 'deeper', 'root.qcow2'), 'x'), // below a snapshot folder
      file(path.join(victim, 'other', 'snap-1', 'root.qcow2'), 'x'), // not in snapshots/
      file(path.join(templates, 'base.qcow2'), 'x'), // a template's image
      file(path.join(sv, 'vms', 'loose.qcow2'), 'x'), // vms/ itself
      foreign, // another storage's snapshot image
    ];
    for (const image of wrong) {
      await assert.rejects(c.prepareLaunch(U, launchFiles(sv, d, { sharedImages: [image] })), { message: refusal(image) }, image);
      noEntryFor(U, image, path.dirname(image));
    }
    noEntryFor(U, victimDisk, victim, snapshots, path.dirname(foreign), path.dirname(path.dirname(foreign)));

    // Its overlay's header naming the other VM's disk grants nothing either.
    const overlay = path.join(d, 'root.qcow2');
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', '../vm-dddddddddddd/root.qcow2', '-F', 'qcow2', overlay, '1M');
    await c.prepareLaunch(U, launchFiles(sv, d, { writable: [overlay] }));
    noEntryFor(U, victimDisk, victim);
    assert.deepEqual(owner(victimDisk), { uid: 0, gid: 0, mode: 0o600 });
  });

  it('a storage path with a symbolic link above vms/ (the host\'s choice, not a VM\'s): a clone\'s snapshot image is granted and taken back', async () => {
    const c = await confinement();
    const real = storage('st-real');
    const linked = path.join(tmp, 'st-linked');
    symlinkSync(real, linked);
    const snapImage = snapshotImage(linked, 'vm-abababababab', 'snap-1');
    const { dir: clone, root } = cloneOf(linked, 'vm-bcbcbcbcbcbc', snapImage);
    await c.prepareLaunch(U, launchFiles(linked, clone, { writable: [root], sharedImages: [snapImage] }));
    assert.equal(getAcl(snapImage).effective.get(`user:${U.uid}`), 'r--');
    await c.forget(U, [snapImage], linked);
    noEntryFor(U, snapImage);
  });

  it('forget after the origin\'s user put a link where its snapshots folder was: no error (the clone can still be deleted), nothing granted through the link', async () => {
    const c = await confinement();
    const sf = storage('st-forget');
    const snapImage = snapshotImage(sf, 'vm-fafafafafafa', 'snap-1');
    const snapshots = path.dirname(path.dirname(snapImage));
    const { dir: clone, root } = cloneOf(sf, 'vm-fbfbfbfbfbfb', snapImage);
    await c.prepareLaunch(U, launchFiles(sf, clone, { writable: [root], sharedImages: [snapImage] }));
    assert.equal(getAcl(snapImage).entries.get(`user:${U.uid}`), 'r--');

    // The origin's user renames its snapshots folder (vman's) and puts a link to somewhere of its choosing in its place.
    const hostDir = dir('forget-host', 0o700);
    mkdirSync(path.join(hostDir, 'snap-1'), { mode: 0o700 });
    const hostImage = file(path.join(hostDir, 'snap-1', 'root.qcow2'), 'host', 0o600);
    renameSync(snapshots, `${snapshots}.moved`);
    symlinkSync(hostDir, snapshots);
    await c.forget(U, [snapImage], sf);
    noEntryFor(U, hostImage, path.join(hostDir, 'snap-1'), hostDir);
  });
});

describe('grantSocket as root', rootOnly, () => {
  it('a unix socket becomes the VM user\'s; a link at its name is not followed', async () => {
    const c = await Confinement.create({ euid: 0, cgroups: NONE, allowUnlimited: true });
    const d = dir();
    const sock = path.join(d, 'save.sock');
    const server = net.createServer();
    server.listen(sock);
    await once(server, 'listening');
    try {
      assert.ok(lstatSync(sock).isSocket());
      await c.grantSocket(sock, U);
      const s = lstatSync(sock);
      assert.deepEqual({ uid: s.uid, gid: s.gid }, U);
      await c.grantSocket(sock, undefined);
      assert.equal(lstatSync(sock).uid, U.uid);
    } finally {
      server.close();
      await once(server, 'close');
    }
    assert.ok(!existsSync(sock));

    const target = file(path.join(d, 'target'), 't', 0o600);
    const link = path.join(d, 'link.sock');
    symlinkSync(target, link);
    await c.grantSocket(link, U);
    assert.deepEqual({ uid: statSync(target).uid, gid: statSync(target).gid }, { uid: 0, gid: 0 });
  });
});
