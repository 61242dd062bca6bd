import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildQemuArgs, escapeOptionValue, vmPaths, type QemuVmSpec } from '../src/operator/qemu-command.ts';
import { diskNodeNames, newDeviceModel, withDataDisk, withoutDataDisk } from '../src/model/device-model.ts';

const base: QemuVmSpec = {
  id: 'vm-1',
  dir: '/tmp/vman/vm-1',
  qemuBinary: '/usr/bin/qemu-system-x86_64',
  accel: 'tcg',
  cpus: 1,
  memoryMb: 512,
  boot: { kernel: '/g/vmlinuz', initrd: '/g/initrd.img', cmdline: 'console=ttyS0 quiet' },
  disks: [],
  network: { mode: 'user', subnet: '10.0.2.0/24', address: '10.0.2.15', mac: '52:54:00:12:34:56' },
  deviceModel: newDeviceModel('vm-1', true),
};

/** The value following `flag`, for each occurrence. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
}

describe('QEMU command line', () => {
  test('names the process vman-<id> and writes a pidfile in the VM folder, without daemonizing (the sandbox forbids it)', () => {
    const args = buildQemuArgs(base);
    assert.deepEqual(values(args, '-name'), ['vman-vm-1']);
    assert.ok(!args.includes('-daemonize'));
    assert.deepEqual(values(args, '-pidfile'), ['/tmp/vman/vm-1/qemu.pid']);
    assert.deepEqual(values(args, '-serial'), ['file:/tmp/vman/vm-1/serial.log']);
  });

  test('two QMP monitors (operator and observers) and the guest agent port', () => {
    const args = buildQemuArgs(base);
    const chardevs = values(args, '-chardev');
    const p = vmPaths(base.dir);
    assert.ok(chardevs.includes(`socket,id=qmp,path=${p.qmp},server=on,wait=off`));
    assert.ok(chardevs.includes(`socket,id=qmp-aux,path=${p.qmpAux},server=on,wait=off`));
    assert.deepEqual(values(args, '-mon'), ['chardev=qmp,mode=control', 'chardev=qmp-aux,mode=control']);
    assert.ok(values(args, '-device').includes('virtserialport,bus=vser0.0,chardev=ga,name=org.qemu.guest_agent.0'));
  });

  test('accelerator, CPUs, memory and direct kernel boot', () => {
    const args = buildQemuArgs({ ...base, accel: 'kvm', cpus: 2, memoryMb: 1024 });
    assert.deepEqual(values(args, '-machine'), ['pc-i440fx-7.2']);
    assert.deepEqual(values(args, '-accel'), ['kvm']);
    assert.deepEqual(values(args, '-cpu'), ['host']);
    assert.deepEqual(values(args, '-smp'), ['2']);
    assert.deepEqual(values(args, '-m'), ['1024']);
    assert.deepEqual(values(args, '-kernel'), ['/g/vmlinuz']);
    assert.deepEqual(values(args, '-initrd'), ['/g/initrd.img']);
    assert.deepEqual(values(args, '-append'), ['console=ttyS0 quiet']);
    assert.deepEqual(values(buildQemuArgs(base), '-cpu'), ['max']);
    assert.deepEqual(values(buildQemuArgs(base), '-accel'), ['tcg,tb-size=256']);
  });

  test('user networking hands out exactly the allocated address, lets the guest out unless restricted, and forwards SSH', () => {
    const args = buildQemuArgs(base);
    assert.deepEqual(values(args, '-netdev'), ['user,id=net0,net=10.0.2.0/24,dhcpstart=10.0.2.15']);
    assert.ok(values(args, '-device').includes('virtio-net-pci,netdev=net0,id=net0dev,addr=0x3,mac=52:54:00:12:34:56'));
    const restricted = buildQemuArgs({ ...base, network: { ...base.network, mode: 'user', subnet: '10.0.2.0/24', address: '10.0.2.15', mac: '52:54:00:12:34:56', restrict: true, sshPort: 2222 } });
    assert.deepEqual(values(restricted, '-netdev'), ['user,id=net0,net=10.0.2.0/24,dhcpstart=10.0.2.15,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22']);
    assert.throws(() => buildQemuArgs({ ...base, network: { mode: 'user', subnet: '10.0.2.0/24', address: '10.0.2.15', mac: '52:54:00:12:34:56', sshPort: 70000 } }), /invalid SSH port/);
  });

  test('tap networking without helper scripts', () => {
    const args = buildQemuArgs({ ...base, network: { mode: 'tap', ifname: 'vtap0', mac: '52:54:00:00:00:01' } });
    assert.deepEqual(values(args, '-netdev'), ['tap,id=net0,ifname=vtap0,script=no,downscript=no']);
  });

  test('cold-attached disks become blockdev nodes and virtio-blk devices named after the disk', () => {
    const args = buildQemuArgs({ ...base, disks: [{ id: 'd1', path: '/s/disks/d1.qcow2', format: 'qcow2' }], deviceModel: withDataDisk(base.deviceModel, 'd1') });
    const names = diskNodeNames('d1');
    assert.deepEqual(values(args, '-blockdev'), [
      `driver=file,node-name=${names.fileNode},filename=/s/disks/d1.qcow2`,
      `driver=qcow2,node-name=${names.node},file=${names.fileNode}`,
    ]);
    assert.ok(values(args, '-device').includes(`virtio-blk-pci,drive=${names.node},id=${names.device},addr=0x6,serial=d1`));
  });

  test('commas in paths are escaped for QEMU option strings', () => {
    assert.equal(escapeOptionValue('/a,b/c'), '/a,,b/c');
    const args = buildQemuArgs({ ...base, disks: [{ id: 'd1', path: '/s/x,y.qcow2', format: 'qcow2' }], deviceModel: withDataDisk(base.deviceModel, 'd1') });
    assert.ok(values(args, '-blockdev')[0]!.endsWith('filename=/s/x,,y.qcow2'));
  });

  test('refuses ids and values that could inject QEMU options', () => {
    assert.throws(() => buildQemuArgs({ ...base, id: 'a,b' }), /invalid vm id/);
    assert.throws(() => buildQemuArgs({ ...base, id: '../x' }), /invalid vm id/);
    assert.throws(() => buildQemuArgs({ ...base, network: { ...base.network, mode: 'user', subnet: '10.0.2.0/24,hostfwd=tcp::22-:22', address: '10.0.2.15', mac: '52:54:00:12:34:56' } }), /invalid subnet/);
    assert.throws(() => buildQemuArgs({ ...base, network: { mode: 'tap', ifname: 'x,script=/bin/sh', mac: '52:54:00:00:00:01' } }), /invalid tap name/);
    assert.throws(() => buildQemuArgs({ ...base, network: { mode: 'user', subnet: '10.0.2.0/24', address: '10.0.2.15', mac: 'zz' } }), /invalid MAC/);
    assert.throws(() => buildQemuArgs({ ...base, disks: [{ id: 'D,1', path: '/x', format: 'qcow2' }] }), /invalid disk id/);
    assert.throws(() => buildQemuArgs({ ...base, cpus: 0 }), /invalid cpus/);
  });

  test('refuses a VM folder whose socket paths would exceed the kernel limit', () => {
    assert.throws(() => buildQemuArgs({ ...base, dir: `/tmp/${'x'.repeat(100)}` }), /socket path too long/);
  });

  test('pins the machine, puts every device in its recorded slot, and gives each QEMU a generation id', () => {
    const model = withDataDisk(withDataDisk(base.deviceModel, 'd1'), 'd2');
    const args = buildQemuArgs({ ...base, deviceModel: model, disks: [{ id: 'd2', path: '/s/d2.qcow2', format: 'qcow2' }, { id: 'd1', path: '/s/d1.qcow2', format: 'qcow2' }] });
    const devices = values(args, '-device');
    // Slots come from the model, not from the order on the command line.
    assert.ok(devices.some((d) => d.includes('id=disk-d1,addr=0x6')), devices.join('\n'));
    assert.ok(devices.some((d) => d.includes('id=disk-d2,addr=0x7')), devices.join('\n'));
    assert.ok(devices.includes('virtio-serial-pci,id=vser0,addr=0x2'));
    assert.ok(devices.includes('vmgenid,id=vmgenid0'));
    // A detached disk gives its slot back, and the next one takes the lowest free.
    assert.equal(withDataDisk(withoutDataDisk(model, 'd1'), 'd3').slots['disk-d3'], 6);
    assert.throws(() => buildQemuArgs({ ...base, disks: [{ id: 'd9', path: '/s/d9.qcow2', format: 'qcow2' }] }), /no slot/);
  });

  test('a resume waits for its state (-incoming defer) and appends to the console it goes on from', () => {
    const args = buildQemuArgs({ ...base, incomingFd: 3 });
    assert.deepEqual(values(args, '-incoming'), ['defer']);
    assert.deepEqual(values(args, '-serial'), ['chardev:serial0']);
    assert.ok(values(args, '-chardev').some((c) => c.startsWith('file,id=serial0,') && c.endsWith(',append=on')));
    assert.deepEqual(values(buildQemuArgs(base), '-incoming'), []);
    assert.throws(() => buildQemuArgs({ ...base, incomingFd: 1 }), /invalid incoming descriptor/);
  });

  test('forwards SSH to the address a resumed guest kept', () => {
    const args = buildQemuArgs({ ...base, network: { mode: 'user', subnet: '10.0.2.0/24', address: '10.0.2.16', mac: '52:54:00:12:34:56', sshPort: 40022, guestAddress: '10.0.2.15' } });
    assert.ok(values(args, '-netdev')[0]!.includes('hostfwd=tcp:127.0.0.1:40022-10.0.2.15:22'));
    assert.throws(() => buildQemuArgs({ ...base, network: { mode: 'user', subnet: '10.0.2.0/24', address: '10.0.2.16', mac: '52:54:00:12:34:56', guestAddress: '10.0.2.15,x' } }), /invalid guest address/);
  });
});
