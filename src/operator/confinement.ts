// What a VM's QEMU may touch, decided in one place (a security manager in
// libvirt's sense): the uid and gid it runs as, who owns its files and with
// which modes, its seccomp sandbox and its cgroup limits. Nothing else in vman
// chowns, chmods or picks QEMU options for confinement.
//
// - vman as root: each VM's QEMU runs as its own unprivileged uid from a range
//   (VMAN_QEMU_UID_RANGE), with no supplementary groups, no capabilities and
//   no_new_privs. Its folder and its disks while attached are its own (0700,
//   0600); nothing else of the storage is. A clone's root disk is an overlay
//   over its origin's snapshot image: a POSIX ACL lets that one uid read
//   that image and pass through the folders above it (setfacl).
// - vman as an ordinary user: QEMU runs as that user, as vman does.
// Either way QEMU runs under `-sandbox` and, where the host lets vman, in a
// cgroup of its own with a memory and a pids limit.
import { constants } from 'node:fs';
import { copyFile, lchown, open, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  createVmCgroup, describeCgroups, detectCgroups, limitsForTemplate, removeVmCgroup, type CgroupSupport,
} from './cgroups.ts';

export interface QemuIdentity {
  uid: number;
  gid: number;
}

export interface UidRange {
  first: number;
  last: number;
}

/**
 * Above systemd's container range (524288–1879048191) and below 2^31, where no
 * login user, system user or container mapping lives (systemd's "UID/GID
 * ranges"); 65536 VMs.
 */
export const DEFAULT_UID_RANGE: UidRange = { first: 1_879_048_192, last: 1_879_048_192 + 65_535 };

/** As libvirt sets it: no obsolete calls, no setuid, no fork/exec, no scheduler or affinity changes. */
export const SANDBOX_OPTION = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export function parseUidRange(text: string): UidRange {
  const m = /^(\d+)-(\d+)$/.exec(text.trim());
  const first = m ? Number(m[1]) : NaN;
  const last = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 1000 || last < first || last > 0xfffffffe) {
    throw new Error(`invalid uid range ${JSON.stringify(text)}: expected FIRST-LAST, 1000 <= FIRST <= LAST < 4294967295`);
  }
  return { first, last };
}

export type ConfinementMode =
  | { kind: 'per-vm-user'; range: UidRange }
  | { kind: 'vman-user'; uid: number; why: string };

export interface ConfinementOptions {
  uidRange?: UidRange;
  /** VMAN_ALLOW_UNLIMITED=1: start VMs without cgroup limits where the host gives vman none. */
  allowUnlimited?: boolean;
  /** For tests: what the host offers, instead of probing it. */
  cgroups?: CgroupSupport;
  /** For tests: the effective uid vman runs as. */
  euid?: number;
  /** Bridge mode: each VM's QEMU opens /dev/net/tun to attach to its tap. */
  needsTun?: boolean;
}

/** What `vman doctor` and GET /ready say about confinement. */
export interface ConfinementSummary {
  /** Who QEMU runs as, in words. */
  user: string;
  mode: ConfinementMode['kind'];
  sandbox: string;
  limits: string;
  /** Set when no VM may start here, saying why. */
  refusal: string | null;
}

export class Confinement {
  private constructor(
    readonly mode: ConfinementMode,
    readonly cgroups: CgroupSupport,
    private readonly allowUnlimited: boolean,
    private readonly tunProblem?: string,
    private readonly sandboxed = true,
  ) {}

  static async create(opts: ConfinementOptions = {}): Promise<Confinement> {
    const euid = opts.euid ?? process.geteuid?.() ?? 0;
    const mode: ConfinementMode = euid === 0
      ? { kind: 'per-vm-user', range: opts.uidRange ?? DEFAULT_UID_RANGE }
      : { kind: 'vman-user', uid: euid, why: 'vman does not run as root, so it cannot give QEMU a user of its own' };
    const tun = mode.kind === 'per-vm-user' && opts.needsTun ? await tunRefusal() : undefined;
    return new Confinement(mode, opts.cgroups ?? (await detectCgroups()), opts.allowUnlimited ?? false, tun);
  }

  /** The sandbox and nothing else: a QEMU vman runs for a moment as itself (the accelerator probe). */
  static sandboxOnly(): Confinement {
    const uid = process.geteuid?.() ?? 0;
    return new Confinement({ kind: 'vman-user', uid, why: 'a probe of this host, not a VM' }, { kind: 'none', why: 'a probe of this host' }, true);
  }

  /**
   * Nothing at all: QEMU as root, no sandbox, no cgroup, as vman started it
   * before confinement (though not daemonizing itself). Only the benchmark's baseline uses it
   * (bench/confinement.bench.ts); no setting of vman reaches it.
   */
  static unconfined(): Confinement {
    const uid = process.geteuid?.() ?? 0;
    return new Confinement({ kind: 'vman-user', uid, why: 'the unconfined baseline of a benchmark' }, { kind: 'none', why: 'unconfined' }, true, undefined, false);
  }

  get perVmUser(): boolean {
    return this.mode.kind === 'per-vm-user';
  }

  /** Why no VM may start here, or undefined: no cgroup limits, and nobody allowed that. */
  get refusal(): string | undefined {
    if (this.tunProblem) return this.tunProblem;
    if (this.cgroups.kind !== 'none' || this.allowUnlimited) return undefined;
    return `no cgroup gives QEMU memory and pids limits here (${this.cgroups.why}); set VMAN_ALLOW_UNLIMITED=1 to run VMs without limits`;
  }

  summary(): ConfinementSummary {
    const m = this.mode;
    return {
      mode: m.kind,
      user: m.kind === 'per-vm-user'
        ? `each VM's QEMU runs as its own user, uid ${m.range.first}-${m.range.last}, without capabilities`
        : `QEMU runs as vman's own user (uid ${m.uid}): ${m.why}`,
      sandbox: `-sandbox ${SANDBOX_OPTION}`,
      limits: this.cgroups.kind === 'none'
        ? `none: ${this.cgroups.why}${this.allowUnlimited ? ' (allowed by VMAN_ALLOW_UNLIMITED=1)' : ''}`
        : describeCgroups(this.cgroups),
      refusal: this.refusal ?? null,
    };
  }

  /** The uid and gid for a VM's first start: the lowest of the range that no VM holds; its gid is its uid. */
  allocate(inUse: ReadonlySet<number>): QemuIdentity | undefined {
    if (this.mode.kind !== 'per-vm-user') return undefined;
    const { first, last } = this.mode.range;
    for (let uid = first; uid <= last; uid++) {
      if (!inUse.has(uid)) return { uid, gid: uid };
    }
    throw new Error(`every uid of the range ${first}-${last} is held by a VM: widen VMAN_QEMU_UID_RANGE`);
  }

  /** QEMU's own options for its confinement. */
  qemuArgs(): string[] {
    return this.sandboxed ? ['-sandbox', SANDBOX_OPTION] : [];
  }

  /** Storage folders above the VMs' own: passable for a VM's user (to reach its folder), not readable. */
  get storageDirMode(): number {
    return this.perVmUser ? 0o711 : 0o700;
  }

  /**
   * Before QEMU starts: its folder, its console log, its root overlay and
   * seed and the data disks it opens take the owners and modes above, and
   * the snapshot images its records say it stands on (a clone's) are shared
   * with it. Each start does it again: a revert or a restore writes files as
   * vman.
   */
  async prepareLaunch(who: QemuIdentity | undefined, files: LaunchFiles): Promise<void> {
    if (!who) return;
    await assertPassable(path.dirname(files.dir));
    await ownAs(files.dir, who, 0o700, { keepMask: true });
    // QEMU makes its console log itself with mode 0644 otherwise: made here, its owner's alone (never through a planted link or FIFO).
    const serial = await openVmFile(files.serialLog, 'a');
    await serial.close();
    for (const f of [files.serialLog, ...files.writable]) await ownAs(f, who, 0o600);
    for (const f of files.readOnly) await ownAs(f, who, 0o400);
    for (const image of files.sharedImages) await shareImage(image, who.uid, files.storagePath, 'grant');
  }

  /** A VM going away: the snapshot images its disks stood on are no longer its to read (its uid may go to another VM). */
  async forget(who: QemuIdentity | null, sharedImages: string[], storagePath: string): Promise<void> {
    if (!who || !this.perVmUser) return;
    for (const image of sharedImages) await shareImage(image, who.uid, storagePath, 'revoke');
  }

  /** A data disk QEMU is about to open: the VM's alone while attached. */
  async grantDisk(file: string, who: QemuIdentity | undefined): Promise<void> {
    if (who) await ownAs(file, who, 0o600);
  }

  /** A disk QEMU let go of, or a new one: vman's, 0600. */
  async releaseDisk(file: string): Promise<void> {
    await ownAs(file, { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }, 0o600).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** A socket vman listens on for QEMU to connect to (a state being saved): QEMU's user must write to it. */
  async grantSocket(file: string, who: QemuIdentity | undefined): Promise<void> {
    // A socket cannot be opened to fchown it; lchown never follows a link. Its owner's bits let QEMU connect; nobody else's do.
    if (who) await lchown(file, who.uid, who.gid);
  }

  /** A cgroup of its own for the VM's QEMU, with its limits; the process moved in. */
  async limit(vmId: string, pid: number, memoryMb: number): Promise<void> {
    if (this.cgroups.kind === 'none') return;
    const group = await createVmCgroup(this.cgroups, vmId, limitsForTemplate(memoryMb));
    await group.addProcess(pid);
  }

  /** The VM's cgroup, once its QEMU is gone. */
  async release(vmId: string): Promise<void> {
    if (this.cgroups.kind !== 'none') await removeVmCgroup(this.cgroups, vmId);
  }
}

export interface LaunchFiles {
  storagePath: string;
  dir: string;
  serialLog: string;
  /** Opened read-write: the root overlay, the attached data disks. */
  writable: string[];
  /** Opened read-only: the cloud-init seed. */
  readOnly: string[];
  /**
   * Snapshot images its disks stand on (a clone's origin's, and theirs), as
   * vman's records say: never read from the overlay's header, which the VM's
   * own user can write.
   */
  sharedImages: string[];
}

const run = promisify(execFile);

/** Why a VM's own user could not open /dev/net/tun (bridge mode), or undefined. */
async function tunRefusal(): Promise<string | undefined> {
  const st = await stat('/dev/net/tun').catch(() => undefined);
  if (!st) return 'bridge mode needs /dev/net/tun, and this host has none';
  if ((st.mode & 0o006) !== 0o006) {
    return `a VM's QEMU runs as a user of its own and cannot open /dev/net/tun (mode ${(st.mode & 0o777).toString(8)}): make it 0666, as udev's default rule does`;
  }
  return undefined;
}

/**
 * The first folder from `dir` up to / that others cannot pass (o+x), or, for
 * `dir` itself with `need` 0o005, read and pass; undefined if none. A `dir`
 * not made yet is judged from its nearest existing folder.
 */
export async function closedToOthers(dir: string, need = 0o001): Promise<{ dir: string; mode: number } | undefined> {
  let d = dir;
  while (!(await stat(d).then(() => true, () => false)) && path.dirname(d) !== d) d = path.dirname(d);
  for (let first = true; ; first = false) {
    const mode = (await stat(d)).mode & 0o777;
    const wanted = first ? need : 0o001;
    if ((mode & wanted) !== wanted) return { dir: d, mode };
    if (path.dirname(d) === d) return undefined;
    d = path.dirname(d);
  }
}

/** Every folder from `dir` up to / must let any user pass, or QEMU's user cannot reach its own folder. */
async function assertPassable(dir: string): Promise<void> {
  const closed = await closedToOthers(dir);
  if (closed) {
    throw new Error(`a VM's QEMU runs as its own user and cannot pass ${closed.dir} (mode ${closed.mode.toString(8)}): give that folder o+x or keep vman's storage elsewhere`);
  }
}

/**
 * A clone's overlay reads its origin's snapshot image, in a snapshot folder
 * inside the origin's VM folder: one ACL entry lets this uid read the image,
 * one per folder up to `vms/` lets it pass (not list). The path must be what
 * it says, with no link on the way (the origin's user owns its VM folder and
 * could plant one), and inside a snapshot folder of the storage.
 */
async function shareImage(image: string, uid: number, storagePath: string, how: 'grant' | 'revoke'): Promise<void> {
  const vms = path.join(storagePath, 'vms');
  const real = await realpath(image).catch(() => undefined);
  const inside = path.relative(vms, image).split(path.sep);
  // Links above vms/ are the host's choice; at or below it, a VM's user could have planted one.
  const expected = path.join(await realpath(vms), ...inside);
  if (real !== expected || inside.length !== 4 || inside[1] !== 'snapshots' || inside.some((p) => p === '..' || p === '')) {
    // Taking back is best done where the image still is what it was: a clone is never kept from being deleted.
    if (how === 'revoke') return;
    throw new Error(`${image} is not a snapshot image of this storage as vman made it (it resolves to ${real ?? 'nothing'}): no VM is given it`);
  }
  await acl(image, uid, how === 'grant' ? 'r' : undefined);
  for (let dir = path.dirname(image); dir.startsWith(vms + path.sep); dir = path.dirname(dir)) {
    await acl(dir, uid, how === 'grant' ? 'x' : undefined);
  }
}

/** setfacl -m u:UID:PERM (or -x u:UID without perm); -P: never through a symbolic link. */
async function acl(file: string, uid: number, perm: 'r' | 'x' | undefined): Promise<void> {
  const args = perm ? ['-P', '-m', `u:${uid}:${perm}`, file] : ['-P', '-x', `u:${uid}`, file];
  await run('setfacl', args).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
    if (err.code === 'ENOENT') throw new Error('setfacl is not installed (Debian: apt-get install acl): a clone cannot read its origin\'s snapshot here', { cause: err });
    // Removing an entry that is not there is done.
    if (!perm && /No such|not found/i.test(err.stderr ?? '')) return;
    throw new Error(`setfacl ${args.join(' ')}: ${err.stderr?.trim() || err.message}`, { cause: err });
  });
}

/**
 * Opens a file in a VM's folder without following a symbolic link: that
 * folder is the VM's user's, and an escaped QEMU could plant a link to a
 * host file for vman (root) to read, copy or chown.
 */
export function openVmFile(file: string, flags: 'r' | 'a' = 'r', mode = 0o600): Promise<FileHandle> {
  const base = flags === 'r' ? constants.O_RDONLY : constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;
  return open(file, base | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
}

/**
 * Copies a file out of (or into) a VM's folder; neither end is followed
 * through a link. The kernel copies (copy_file_range) between the two
 * descriptors, named through /proc/self/fd.
 */
export async function copyVmFile(from: string, to: string, opts: { exclusive?: boolean } = {}): Promise<void> {
  const src = await openVmFile(from);
  try {
    // A FIFO or a device planted under the name would hang the copy or read the host's: files only.
    if (!(await src.stat()).isFile()) throw new Error(`${from} is not a regular file; vman copies none other out of a VM's folder`);
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (opts.exclusive ? constants.O_EXCL : constants.O_TRUNC);
    const dst = await open(to, flags, 0o600);
    try {
      await copyFile(`/proc/self/fd/${src.fd}`, `/proc/self/fd/${dst.fd}`);
      // The copy takes the source's mode (libuv): vman's copies are its own alone.
      await dst.chmod(0o600);
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/** Owner and mode through a descriptor opened without following links: race-free against a planted link. */
async function ownAs(file: string, who: QemuIdentity, mode: number, opts: { keepMask?: boolean } = {}): Promise<void> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ELOOP') throw new Error(`${file} is a symbolic link; vman hands no links to QEMU`, { cause: err });
    throw err;
  });
  try {
    const st = await handle.stat();
    if (st.uid !== who.uid || st.gid !== who.gid) await handle.chown(who.uid, who.gid);
    // With `keepMask`, group bits stay: on a VM folder with an ACL they are its mask, and a clone's grant
    // (shareImage) lives in it. That group is the VM's own, with no other member.
    const care = opts.keepMask ? 0o7707 : 0o7777;
    if ((st.mode & care) !== (mode & care)) await handle.chmod((mode & care) | (st.mode & ~care & 0o7777));
  } finally {
    await handle.close();
  }
}
