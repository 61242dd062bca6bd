// Builds QEMU's argument vector from a typed spec. No shell is involved: the
// result is passed to execFile as an array, and every value that lands inside
// a QEMU option string is either validated or comma-escaped.
import path from 'node:path';
import { assertId } from '../names.ts';
import { diskNodeNames, NIC_ID, pciAddr, SERIAL_BUS_ID, type DeviceModel } from '../model/device-model.ts';
import type { QemuIdentity } from './confinement.ts';

export type Accelerator = 'kvm' | 'tcg';

/** TCG's translation cache, in MB: part of QEMU's own memory, which its cgroup allows beside the guest's (cgroups.ts). */
export const TCG_TB_SIZE_MB = 256;

export interface KernelBoot {
  kernel: string;
  initrd?: string;
  cmdline?: string;
}

export interface DiskSpec {
  /** Disk id; QEMU node and device names are derived from it. */
  id: string;
  path: string;
  format: 'qcow2' | 'raw';
  /** Given to the guest read-only (the cloud-init seed). */
  readOnly?: boolean;
  /** PCI address for a hot-plug (`0x6`); on the command line the device model gives it. */
  addr?: string;
}

export type NetworkSpec =
  | { mode: 'none' }
  | { mode: 'user'; subnet: string; address: string; mac: string; gateway?: string; restrict?: boolean; sshPort?: number; guestAddress?: string }
  | { mode: 'tap'; ifname: string; mac: string };

export interface QemuVmSpec {
  id: string;
  /** The VM's own folder: sockets, pidfile, serial log and overlay live here. */
  dir: string;
  /** The unprivileged user QEMU runs as (vman as root); none: vman's own user. */
  identity?: QemuIdentity;
  /** Snapshot images under its root disk (a clone's), by vman's records: its user is let read them. */
  sharedImages?: string[];
  qemuBinary: string;
  accel: Accelerator;
  cpus: number;
  memoryMb: number;
  boot: KernelBoot | null;
  /** Root disk (the VM's overlay of a template's base image), booted first. */
  rootDisk?: DiskSpec;
  /** Data disks present from the start (cold attach). */
  disks: DiskSpec[];
  /** The cloud-init seed, read-only, after the data disks. */
  seed?: DiskSpec;
  network: NetworkSpec;
  /** Machine type and every device's id and PCI slot: the same at every start, so a saved state fits. */
  deviceModel: DeviceModel;
  /**
   * Resume a saved state instead of booting: QEMU waits for it (`-incoming
   * defer`) on the descriptor vman hands it at this number.
   */
  incomingFd?: number;
}

export interface VmPaths {
  qmp: string;
  /** Second QMP monitor for observers and tests: QEMU allows one client per socket. */
  qmpAux: string;
  guestAgent: string;
  pidfile: string;
  serialLog: string;
}

/** Unix socket paths are limited to 107 bytes by the kernel. */
const MAX_SOCKET_PATH = 107;

export function vmPaths(dir: string): VmPaths {
  return {
    qmp: path.join(dir, 'qmp.sock'),
    qmpAux: path.join(dir, 'qmp-aux.sock'),
    guestAgent: path.join(dir, 'ga.sock'),
    pidfile: path.join(dir, 'qemu.pid'),
    serialLog: path.join(dir, 'serial.log'),
  };
}

/** QEMU's option parser splits on ','; a literal comma is written ',,'. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

export function qemuName(vmId: string): string {
  return `vman-${vmId}`;
}

const MAC_PATTERN = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const IPV4_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const CIDR_PATTERN = /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/;
const IFNAME_PATTERN = /^[A-Za-z0-9_.-]{1,15}$/;

export function buildQemuArgs(spec: QemuVmSpec): string[] {
  assertId('vm id', spec.id);
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1 || spec.cpus > 64) throw new Error(`invalid cpus ${spec.cpus}`);
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 16) throw new Error(`invalid memory ${spec.memoryMb} MB`);
  const p = vmPaths(spec.dir);
  for (const sock of [p.qmp, p.qmpAux, p.guestAgent]) {
    if (Buffer.byteLength(sock) > MAX_SOCKET_PATH) {
      throw new Error(`socket path too long (${Buffer.byteLength(sock)} > ${MAX_SOCKET_PATH} bytes): ${sock}`);
    }
  }

  const args: string[] = [
    '-name', qemuName(spec.id),
    '-machine', spec.deviceModel.machine,
    // TCG's translation cache would grow to 1 GB by default: bounded, it fits the VM's memory limit (cgroups.ts).
    '-accel', spec.accel === 'kvm' ? 'kvm' : `tcg,tb-size=${TCG_TB_SIZE_MB}`,
    '-cpu', spec.accel === 'kvm' ? 'host' : 'max',
    '-smp', String(spec.cpus),
    '-m', String(spec.memoryMb),
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
    // A guest-initiated reboot ends the process like a shutdown; vman restarts explicitly.
    '-no-reboot',
    // A resumed guest's console goes on where its saved one stopped (the log was copied in).
    ...(spec.incomingFd === undefined
      ? ['-serial', `file:${escapeOptionValue(p.serialLog)}`]
      : ['-chardev', `file,id=serial0,path=${escapeOptionValue(p.serialLog)},append=on`, '-serial', 'chardev:serial0']),
    '-chardev', `socket,id=qmp,path=${escapeOptionValue(p.qmp)},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
    '-chardev', `socket,id=qmp-aux,path=${escapeOptionValue(p.qmpAux)},server=on,wait=off`,
    '-mon', 'chardev=qmp-aux,mode=control',
    '-device', `virtio-serial-pci,id=${SERIAL_BUS_ID},addr=${pciAddr(spec.deviceModel, SERIAL_BUS_ID)}`,
    '-chardev', `socket,id=ga,path=${escapeOptionValue(p.guestAgent)},server=on,wait=off`,
    '-device', `virtserialport,bus=${SERIAL_BUS_ID}.0,chardev=ga,name=org.qemu.guest_agent.0`,
    // A new generation id at every QEMU start: a resumed copy's kernel reseeds its RNG.
    '-device', 'vmgenid,id=vmgenid0',
    // No -daemonize: under the sandbox QEMU 7.x dies forking itself; vman starts it detached instead.
    '-pidfile', p.pidfile,
  ];

  if (spec.boot) {
    args.push('-kernel', spec.boot.kernel);
    if (spec.boot.initrd) args.push('-initrd', spec.boot.initrd);
    if (spec.boot.cmdline) args.push('-append', spec.boot.cmdline);
  }
  const m = spec.deviceModel;
  if (spec.rootDisk) args.push(...diskArgs(spec.rootDisk, m, 1));
  for (const disk of spec.disks) args.push(...diskArgs(disk, m));
  if (spec.seed) args.push(...diskArgs({ ...spec.seed, readOnly: true }, m));
  args.push(...networkArgs(spec.network, m));
  if (spec.incomingFd !== undefined) {
    if (!Number.isInteger(spec.incomingFd) || spec.incomingFd < 3) throw new Error(`invalid incoming descriptor ${spec.incomingFd}`);
    args.push('-incoming', 'defer');
  }
  return args;
}

function diskArgs(disk: DiskSpec, model: DeviceModel, bootIndex?: number): string[] {
  const names = diskNodeNames(disk.id);
  const ro = disk.readOnly ? ',read-only=on' : '';
  const file = `driver=file,node-name=${names.fileNode},filename=${escapeOptionValue(disk.path)}${ro}`;
  // The serial carries the disk id into the guest (/sys/block/vdX/serial): how
  // vman learns which device the guest gave the disk, instead of guessing.
  const device = [`virtio-blk-pci`, `drive=${names.node}`, `id=${names.device}`, `addr=${pciAddr(model, names.device)}`, `serial=${disk.id}`];
  if (bootIndex !== undefined) device.push(`bootindex=${bootIndex}`);
  return [
    '-blockdev', file,
    '-blockdev', `driver=${disk.format},node-name=${names.node},file=${names.fileNode}${ro}`,
    '-device', device.join(','),
  ];
}

function networkArgs(net: NetworkSpec, model: DeviceModel): string[] {
  if (net.mode === 'none') return ['-net', 'none'];
  if (!MAC_PATTERN.test(net.mac)) throw new Error(`invalid MAC address ${JSON.stringify(net.mac)}`);
  const device = ['-device', `virtio-net-pci,netdev=net0,id=${NIC_ID},addr=${pciAddr(model, NIC_ID)},mac=${net.mac}`];
  if (net.mode === 'user') {
    if (!CIDR_PATTERN.test(net.subnet)) throw new Error(`invalid subnet ${JSON.stringify(net.subnet)}`);
    if (!IPV4_PATTERN.test(net.address)) throw new Error(`invalid address ${JSON.stringify(net.address)}`);
    // dhcpstart hands exactly this address to the first (only) DHCP client;
    // restrict=on keeps the guest from reaching anything outside; hostfwd is the way in to its SSH.
    if (net.gateway !== undefined && !IPV4_PATTERN.test(net.gateway)) throw new Error(`invalid gateway ${JSON.stringify(net.gateway)}`);
    if (net.sshPort !== undefined && (!Number.isInteger(net.sshPort) || net.sshPort < 1 || net.sshPort > 65535)) throw new Error(`invalid SSH port ${net.sshPort}`);
    const host = net.gateway ? `,host=${net.gateway}` : '';
    const restrict = net.restrict ? ',restrict=on' : '';
    // A resumed guest keeps the address it was saved with, which need not be the one this slirp offers.
    if (net.guestAddress !== undefined && !IPV4_PATTERN.test(net.guestAddress)) throw new Error(`invalid guest address ${JSON.stringify(net.guestAddress)}`);
    const ssh = net.sshPort !== undefined ? `,hostfwd=tcp:127.0.0.1:${net.sshPort}-${net.guestAddress ?? ''}:22` : '';
    return ['-netdev', `user,id=net0,net=${net.subnet}${host},dhcpstart=${net.address}${restrict}${ssh}`, ...device];
  }
  if (!IFNAME_PATTERN.test(net.ifname)) throw new Error(`invalid tap name ${JSON.stringify(net.ifname)}`);
  return ['-netdev', `tap,id=net0,ifname=${net.ifname},script=no,downscript=no`, ...device];
}
