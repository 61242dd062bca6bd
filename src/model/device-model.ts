// A VM's virtual hardware as vman records it: the pinned machine type, every
// device's id and PCI slot, and the block names of its disks. Persisted with
// the VM (vms.device_model) and copied into each snapshot, because a saved
// state resumes only into the very same machine: QEMU matches devices by their
// place on the bus. The services, the operator and the observer all read block
// names from here, so they are built in one place.
import { assertId } from '../names.ts';
import type { VmRecord } from '../db/types.ts';

/** Pinned, not the `pc` alias: a state saved by one machine version loads only into the same one. */
export const MACHINE_TYPE = 'pc-i440fx-7.2';

/** qdev ids of the devices every VM has. */
export const SERIAL_BUS_ID = 'vser0';
export const NIC_ID = 'net0dev';

/** PCI slots 0 and 1 are the host bridge and the PIIX3; data disks take the lowest free slot from here. */
const FIXED_SLOTS = { [SERIAL_BUS_ID]: 2, [NIC_ID]: 3 } as const;
const ROOT_SLOT = 4;
const SEED_SLOT = 5;
const FIRST_DATA_SLOT = 6;
const LAST_SLOT = 31;

export interface DeviceModel {
  machine: string;
  /** The root disk's id (its overlay), when the template has a base image. */
  rootDiskId: string | null;
  /** The cloud-init seed's id. */
  seedDiskId: string;
  /** PCI slot of every device by its qdev id: the fixed ones, the root, the seed and each data disk attached. */
  slots: Record<string, number>;
}

/** Node and device names QEMU uses for a disk, derived from the disk id. */
export function diskNodeNames(diskId: string): { node: string; fileNode: string; device: string } {
  assertId('disk id', diskId);
  // virtio-blk serials hold at most 20 bytes, and the serial is the disk id.
  if (diskId.length > 20) throw new Error(`invalid disk id ${JSON.stringify(diskId)}: at most 20 characters`);
  return { node: `drive-${diskId}`, fileNode: `file-${diskId}`, device: `disk-${diskId}` };
}

/** A new VM's hardware: the root disk and seed are named after the VM. */
export function newDeviceModel(vmId: string, withRoot: boolean): DeviceModel {
  const hex = vmId.replace(/^vm-/, '');
  const rootDiskId = withRoot ? `root-${hex}` : null;
  const seedDiskId = `seed-${hex}`;
  const slots: Record<string, number> = { ...FIXED_SLOTS, [diskNodeNames(seedDiskId).device]: SEED_SLOT };
  if (rootDiskId) slots[diskNodeNames(rootDiskId).device] = ROOT_SLOT;
  return { machine: MACHINE_TYPE, rootDiskId, seedDiskId, slots };
}

/** The model a VM has, or the one a VM made before models were recorded gets at its next cold start. */
export function deviceModelOf(vm: Pick<VmRecord, 'id' | 'deviceModel'>, withRoot: boolean): DeviceModel {
  return vm.deviceModel ?? newDeviceModel(vm.id, withRoot);
}

/** The model with a data disk in the lowest free slot (kept if it has one). */
export function withDataDisk(model: DeviceModel, diskId: string): DeviceModel {
  const device = diskNodeNames(diskId).device;
  if (model.slots[device] !== undefined) return model;
  const taken = new Set(Object.values(model.slots));
  for (let slot = FIRST_DATA_SLOT; slot <= LAST_SLOT; slot++) {
    if (!taken.has(slot)) return { ...model, slots: { ...model.slots, [device]: slot } };
  }
  throw new Error(`no free PCI slot for disk ${diskId}: slots ${FIRST_DATA_SLOT}-${LAST_SLOT} are all taken`);
}

export function withoutDataDisk(model: DeviceModel, diskId: string): DeviceModel {
  const device = diskNodeNames(diskId).device;
  if (model.slots[device] === undefined) return model;
  const slots = { ...model.slots };
  delete slots[device];
  return { ...model, slots };
}

/** A device's PCI address as QEMU's `addr=` takes it. */
export function pciAddr(model: DeviceModel, deviceId: string): string {
  const slot = model.slots[deviceId];
  if (slot === undefined) throw new Error(`device ${deviceId} has no slot in the VM's device model`);
  return `0x${slot.toString(16)}`;
}

/** Block device and node names a VM's QEMU may hold: its root's, its seed's, and those of the data disks given. */
export function expectedBlockNames(model: DeviceModel, dataDiskIds: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const id of [model.rootDiskId, model.seedDiskId, ...dataDiskIds]) {
    if (id === null) continue;
    const n = diskNodeNames(id);
    names.add(n.device).add(n.node).add(n.fileNode);
  }
  return names;
}

/** Block device and node names vman gives a disk: `disk-<id>` (device), `drive-<id>` and `file-<id>` (nodes). */
export function diskIdOfBlockName(name: string): string | undefined {
  return /^(?:disk|drive|file)-(.+)$/.exec(name)?.[1];
}

export function parseDeviceModel(json: string | null): DeviceModel | null {
  if (json === null) return null;
  const m = JSON.parse(json) as DeviceModel;
  if (typeof m.machine !== 'string' || typeof m.seedDiskId !== 'string' || typeof m.slots !== 'object') throw new Error(`malformed device model ${json}`);
  return m;
}
