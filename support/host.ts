// What this host offers the suite, found by the suite itself: the QEMU and
// qemu-img binaries and their versions, the built test guest, the kernel.
// Once per run. Without QEMU a scenario is skipped with the reason, or fails
// when VMAN_REQUIRE_QEMU=1 (CI). vman's own probe is vman's business: the
// World hands vman what it needs to start (world/vman-service.ts).
import { access, readFile, realpath } from 'node:fs/promises';
import { runContext } from './run-context.ts';
import { withinReach } from './within-reach.ts';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export interface SuiteHost {
  qemu: { path: string; version: string };
  qemuImg: { path: string; version: string };
  /** The accelerator the suite's own guests use: TCG, unless VMAN_ACCEL=kvm says otherwise. */
  accel: 'kvm' | 'tcg';
  kernelRelease: string;
  guest: { dir: string; kernel: string; initrd: string; cmdline: string; readyMarker: string; manifest: Record<string, string> };
  /** The test guest on a disk that boots by its own bootloader (SYSLINUX), when built. */
  bootImage?: string;
  /** The Debian cloud image (guest/build-debian.sh), when built. */
  debian?: DebianImage;
}

export interface DebianImage {
  dir: string;
  kernel: string;
  initrd: string;
  /** With qemu-guest-agent, and without it. */
  image: string;
  imageWithoutAgent: string;
  cmdline: string;
  /** cloud-init's default user, who gets the SSH keys. */
  user: string;
  /** Its cache key (package versions and recipe) and the versions it was built from, as its manifest says. */
  key: string;
  versions: string;
}

/** The Debian image guest/build-debian.sh made, if it did. */
async function builtDebian(): Promise<DebianImage | undefined> {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const cached = await realpath(path.join(process.env.VMAN_DEBIAN_CACHE || path.join(cache, 'vman', 'debian'), 'current')).catch(() => undefined);
  if (!cached) return undefined;
  const dir = await withinReach(cached, runContext().root);
  const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, string>;
  return {
    dir, kernel: path.join(dir, m.kernel!), initrd: path.join(dir, m.initrd!), image: path.join(dir, m.image!),
    imageWithoutAgent: path.join(dir, m.image_without_agent!), cmdline: m.cmdline!, user: m.user!,
    key: m.key ?? path.basename(cached), versions: m.versions ?? '?',
  };
}

export type HostStatus = { ok: true; host: SuiteHost; description: string } | { ok: false; reason: string };

const SEARCH = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/local/bin'].filter(Boolean);

async function findBinary(name: string): Promise<string> {
  for (const dir of SEARCH) {
    const file = path.join(dir, name);
    if (await access(file).then(() => true, () => false)) return file;
  }
  throw new Error(`${name} is not on PATH; ./setup.sh installs it`);
}

/** "QEMU emulator version 7.2.22 (Debian …)" → "7.2.22". */
async function versionOf(file: string): Promise<string> {
  const { stdout } = await execa(file, ['--version']);
  const m = /version (\d+\.\d+\.\d+)/.exec(stdout);
  if (!m) throw new Error(`${file} --version says no version: ${stdout.split('\n')[0]}`);
  return m[1]!;
}

async function builtGuest(): Promise<SuiteHost['guest']> {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const current = process.env.VMAN_GUEST_DIR || path.join(process.env.VMAN_GUEST_CACHE || path.join(cache, 'vman', 'guest'), 'current');
  const dir = await withinReach(await realpath(current).catch(() => {
    throw new Error(`the test guest is not built (${current}); run ./setup.sh`);
  }), runContext().root);
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Record<string, string>;
  const guest = {
    dir,
    kernel: path.join(dir, manifest.kernel ?? 'vmlinuz'),
    initrd: path.join(dir, manifest.initrd ?? 'initrd.img'),
    cmdline: manifest.cmdline ?? 'console=ttyS0',
    readyMarker: manifest.ready_marker ?? 'VMAN-GUEST-READY',
    manifest,
  };
  for (const f of [guest.kernel, guest.initrd]) await access(f);
  return guest;
}

async function findHost(): Promise<SuiteHost> {
  const [qemu, qemuImg, guest, debian] = await Promise.all([findBinary('qemu-system-x86_64'), findBinary('qemu-img'), builtGuest(), builtDebian()]);
  const bootImage = guest.manifest.boot_image ? path.join(guest.dir, guest.manifest.boot_image) : undefined;
  return {
    qemu: { path: qemu, version: await versionOf(qemu) },
    qemuImg: { path: qemuImg, version: await versionOf(qemuImg) },
    accel: process.env.VMAN_ACCEL === 'kvm' ? 'kvm' : 'tcg',
    kernelRelease: os.release(),
    guest,
    ...(bootImage ? { bootImage } : {}),
    ...(debian ? { debian } : {}),
  };
}

/** What the test guest was built from, as its manifest says. */
export function guestBuiltFrom(m: Record<string, string>): string {
  return `${m.kernel_package ?? 'kernel'} ${m.kernel_version ?? '?'}, qemu-guest-agent ${m.qemu_guest_agent_version ?? '?'}, busybox ${m.busybox_version ?? '?'}`;
}

export function describeSuiteHost(h: SuiteHost): string {
  return [
    `QEMU ${h.qemu.version} (${h.qemu.path}), qemu-img ${h.qemuImg.version}`,
    `host kernel ${h.kernelRelease}`,
    `guest ${guestBuiltFrom(h.guest.manifest)} (${path.basename(h.guest.dir)})`,
  ].join('\n');
}

let status: Promise<HostStatus> | undefined;

export function hostStatus(): Promise<HostStatus> {
  status ??= findHost().then(
    (host): HostStatus => ({ ok: true, host, description: describeSuiteHost(host) }),
    (err: unknown): HostStatus => ({ ok: false, reason: err instanceof Error ? err.message : String(err) }),
  );
  return status;
}

export const qemuRequired = (): boolean => process.env.VMAN_REQUIRE_QEMU === '1';
