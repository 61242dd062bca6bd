// Named points between the steps of every multi-step operation, where vman can
// be made to die (as fail-rs and gofail do): inert unless VMAN_CRASH_AT names
// one, and then vman kills itself there with SIGKILL, so a test reaches the
// exact moment it means without any timing. The words say where the operation
// stands, for people: the @crash feature uses them as they are.
import { writeSync } from 'node:fs';

export const CRASH_POINTS = {
  'vm.create.before-record': 'after its folder was made, before the VM was recorded',
  'vm.start.after-address': 'after it was marked starting and given an address, before its network was set up',
  'vm.start.after-network': 'after its network was set up, before QEMU was launched',
  'vm.start.after-launch': 'after QEMU was launched, before vman connected to it',
  'vm.start.after-connect': 'after vman connected to QEMU, before the guest was ready',
  'vm.start.before-record': 'after the guest was ready, before the VM was recorded running',
  'vm.stop.after-stopping': 'after it was marked stopping, before QEMU was asked to stop',
  'vm.stop.after-exit': 'after QEMU exited, before the network was released',
  'vm.stop.before-record': 'after the network was released, before the VM was recorded stopped',
  'vm.delete.before-record': 'after its QEMU was gone, before its record was removed',
  'vm.delete.after-record': 'after its record was removed, before its folder was removed',
  'vm.snapshot.after-pause': 'after the guest was paused, before its memory was saved',
  'vm.snapshot.after-copy': 'after its memory was saved and its disks copied, before the guest ran on',
  'vm.snapshot.before-record': 'after the guest ran on, before the snapshot was recorded',
  'vm.revert.after-stop': 'after its QEMU was ended, before its disks were put back',
  'vm.revert.after-disks': 'after its disks were put back, before its memory was resumed',
  'disk.create.after-image': 'after qemu-img made the image under a temporary name, before it was moved into place',
  'disk.create.after-rename': 'after the image was moved into place, before the disk was recorded',
  'disk.attach.after-file-node': 'after QEMU opened the disk file, before it read the format',
  'disk.attach.after-format-node': 'after QEMU read the format, before the device was added',
  'disk.attach.after-device-add': 'after QEMU took the disk, before the guest saw it',
  'disk.attach.before-record': 'after the disk was in place, before it was recorded attached',
  'disk.detach.after-device-del': 'after the guest was asked to let go of the disk, before it did',
  'disk.detach.after-device-deleted': 'after the guest let go of the disk, before QEMU closed it',
  'disk.detach.after-format-node-del': 'after QEMU dropped the format, before it closed the file',
  'disk.detach.before-record': 'after QEMU closed the disk, before it was recorded available',
  'disk.delete.after-move': 'after the file was moved aside, before the record was removed',
  'disk.delete.after-record': 'after the record was removed, before the file was removed',
  'network.setup.after-tap': 'after the tap device was made, before DHCP knew the address',
  'network.release.after-tap': 'after the tap device was removed, before DHCP forgot the address',
} as const satisfies Record<string, string>;

export type CrashPoint = keyof typeof CRASH_POINTS;

export const CRASH_POINT_NAMES = Object.keys(CRASH_POINTS) as CrashPoint[];

export function isCrashPoint(name: string): name is CrashPoint {
  return Object.hasOwn(CRASH_POINTS, name);
}

let armed: CrashPoint | undefined;

/** Arms one point (from VMAN_CRASH_AT) or none; an unknown name is refused rather than silently never reached. */
export function armCrashPoint(name: string | undefined): void {
  if (name === undefined || name === '') {
    armed = undefined;
    return;
  }
  if (!isCrashPoint(name)) throw new Error(`unknown crash point ${JSON.stringify(name)}; known: ${CRASH_POINT_NAMES.join(', ')}`);
  armed = name;
}

/** One call site per point. Does nothing unless this point is armed; then vman dies here. */
export function crashPoint(name: CrashPoint): void {
  if (armed !== name) return;
  // Written synchronously: nothing after this line runs.
  writeSync(2, `vman: crash point ${name} reached (${CRASH_POINTS[name]}): killing myself with SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself lands at once; should it not, block rather than run one more step.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
  process.exit(137);
}
