// Locates the test guest built by guest/build.sh (kernel + initramfs + manifest).
import { readFile, realpath, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MissingPrerequisiteError } from './binaries.ts';

export interface GuestImage {
  /** Resolved folder (not the `current` symlink), so a rebuild never swaps files under a running VM. */
  dir: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  readyMarker: string;
  /** kernel_package, kernel_version, qemu_guest_agent_version, busybox_version, key. */
  manifest: Record<string, string>;
}

export function guestCacheRoot(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return process.env.VMAN_GUEST_CACHE || path.join(cache, 'vman', 'guest');
}

export function defaultGuestDir(): string {
  return process.env.VMAN_GUEST_DIR || path.join(guestCacheRoot(), 'current');
}

export async function loadGuestImage(dir = defaultGuestDir()): Promise<GuestImage> {
  const notBuilt = `the test guest image is not built in ${dir}; run ./setup.sh (or guest/build.sh)`;
  const resolved = await realpath(dir).catch(() => {
    throw new MissingPrerequisiteError(notBuilt);
  });
  const text = await readFile(path.join(resolved, 'manifest.json'), 'utf8').catch(() => {
    throw new MissingPrerequisiteError(notBuilt);
  });
  const manifest = JSON.parse(text) as Record<string, string>;
  const image: GuestImage = {
    dir: resolved,
    kernel: path.join(resolved, manifest.kernel ?? 'vmlinuz'),
    initrd: path.join(resolved, manifest.initrd ?? 'initrd.img'),
    cmdline: manifest.cmdline ?? 'console=ttyS0',
    readyMarker: manifest.ready_marker ?? 'VMAN-GUEST-READY',
    manifest,
  };
  for (const f of [image.kernel, image.initrd]) {
    await access(f).catch(() => {
      throw new MissingPrerequisiteError(`${notBuilt} (${f} is missing)`);
    });
  }
  return image;
}

export function describeGuest(g: GuestImage): string {
  const m = g.manifest;
  return `${m.kernel_package ?? 'kernel'} ${m.kernel_version ?? '?'}, qemu-guest-agent ${m.qemu_guest_agent_version ?? '?'}, busybox ${m.busybox_version ?? '?'} (${m.key ?? path.basename(g.dir)})`;
}
