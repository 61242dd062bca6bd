// A VM's tap device on the bridge: named after the VM (so it is found by
// name after a crash), created before QEMU starts and removed after it ends.
import { ip, ipJson, isNoSuchDevice } from './host-command.ts';

/** Tap devices vman makes are `vt` + the 12 hex digits of the VM id: 14 characters (the kernel allows 15). */
export const TAP_PREFIX = 'vt';
const VM_ID = /^vm-([0-9a-f]{12})$/;
const TAP_NAME = /^vt[0-9a-f]{12}$/;

export function tapName(vmId: string): string {
  const m = VM_ID.exec(vmId);
  if (!m) throw new Error(`cannot name a tap device after VM id ${JSON.stringify(vmId)}: expected vm- and 12 hex digits`);
  return `${TAP_PREFIX}${m[1]}`;
}

export function isTapName(name: string): boolean {
  return TAP_NAME.test(name);
}

/** What `ip -j -d link show` says about one interface (the fields vman reads). */
export interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  operstate?: string;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string };
}

export async function linkInfo(name: string): Promise<IpLink | undefined> {
  try {
    const links = await ipJson<IpLink[]>(['-d', 'link', 'show', 'dev', name]);
    return links[0];
  } catch (err) {
    if (isNoSuchDevice(err)) return undefined;
    throw err;
  }
}

/**
 * Creates the tap, puts it on the bridge and brings it up. A tap of the same
 * name left by a crashed run is replaced: the VM is not running (it is being
 * started), so nothing uses it. On failure nothing is left behind.
 */
export async function createTap(name: string, bridge: string, owner?: { uid: number; gid: number }): Promise<void> {
  if (!isTapName(name)) throw new Error(`invalid tap name ${JSON.stringify(name)}`);
  await deleteTap(name);
  // Owned by the VM's QEMU user (vman as root): QEMU attaches to it without CAP_NET_ADMIN, and no other user can.
  const ownedBy = owner ? ['user', String(owner.uid), 'group', String(owner.gid)] : [];
  await ip(['tuntap', 'add', 'dev', name, 'mode', 'tap', ...ownedBy]);
  try {
    await ip(['link', 'set', 'dev', name, 'master', bridge]);
    await ip(['link', 'set', 'dev', name, 'up']);
  } catch (err) {
    await deleteTap(name).catch(() => undefined);
    throw err;
  }
}

/** Removes the tap; false if there was none. Safe to call twice. */
export async function deleteTap(name: string): Promise<boolean> {
  if (!isTapName(name)) throw new Error(`invalid tap name ${JSON.stringify(name)}`);
  try {
    await ip(['link', 'del', 'dev', name]);
    return true;
  } catch (err) {
    if (isNoSuchDevice(err)) return false;
    throw err;
  }
}
