// The pure parts of bridge mode: tap names, dnsmasq's command line, the
// reservations file, and which leases survive a restart.
import assert from 'node:assert/strict';
import { newDeviceModel } from '../src/model/device-model.ts';
import { describe, it } from 'node:test';
import { BridgeNetworkBackend, BridgeSetupError } from '../src/network/bridge-backend.ts';
import { parseNetworkConfig } from '../src/network/config.ts';
import { dnsmasqArgs, dnsmasqFiles, parseLeases, pruneLeases, renderHostsFile } from '../src/network/dnsmasq.ts';
import { parseCidr, parseIpv4 } from '../src/network/ipv4.ts';
import { isTapName, tapName } from '../src/network/tap.ts';
import { buildQemuArgs } from '../src/operator/qemu-command.ts';

describe('tap device names', () => {
  it('are vt + the 12 hex digits of the VM id, within the kernel limit of 15', () => {
    assert.equal(tapName('vm-0123456789ab'), 'vt0123456789ab');
    assert.ok(tapName('vm-0123456789ab').length <= 15);
    assert.ok(isTapName('vt0123456789ab'));
  });

  it('are derived only from vman VM ids', () => {
    for (const id of ['vm-0123456789a', 'vm-0123456789abc', 'vm-0123456789AB', 'xx-0123456789ab', 'vm-01234567../a', '']) {
      assert.throws(() => tapName(id), /cannot name a tap device after VM id/, id);
    }
    for (const name of ['eth0', 'vt0123', 'vt0123456789abc', 'VT0123456789ab']) assert.equal(isTapName(name), false, name);
  });

  it('reach QEMU as -netdev tap with no scripts', () => {
    const args = buildQemuArgs({
      id: 'vm-0123456789ab', dir: '/tmp/x', qemuBinary: 'qemu-system-x86_64', accel: 'tcg', cpus: 1, memoryMb: 512, boot: null, disks: [],
      network: { mode: 'tap', ifname: tapName('vm-0123456789ab'), mac: '52:54:00:12:34:56' }, deviceModel: newDeviceModel('vm-0123456789ab', false),
    });
    assert.ok(args.includes('tap,id=net0,ifname=vt0123456789ab,script=no,downscript=no'), args.join(' '));
    assert.ok(args.includes('virtio-net-pci,netdev=net0,id=net0dev,addr=0x3,mac=52:54:00:12:34:56'));
  });
});

describe('dnsmasq command line', () => {
  const files = dnsmasqFiles('/var/lib/vman');
  const subnet = parseCidr('192.168.77.0/24')!;
  const args = dnsmasqArgs({ bridge: 'vbr0', subnet, gateway: parseIpv4('192.168.77.1')!, files });

  it('keeps its files under <storage>/network', () => {
    assert.deepEqual(files, {
      dir: '/var/lib/vman/network',
      pidfile: '/var/lib/vman/network/dnsmasq.pid',
      hostsfile: '/var/lib/vman/network/dhcp-hosts',
      leasefile: '/var/lib/vman/network/leases',
      logfile: '/var/lib/vman/network/dnsmasq.log',
    });
  });

  it('serves DHCP only, only on the bridge, only to reserved MACs', () => {
    for (const a of [
      '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--port=0',
      '--interface=vbr0', '--bind-interfaces', '--except-interface=lo',
      '--dhcp-range=192.168.77.0,static,255.255.255.0',
      '--dhcp-option=option:router,192.168.77.1',
      '--dhcp-authoritative',
      '--dhcp-hostsfile=/var/lib/vman/network/dhcp-hosts',
      '--dhcp-leasefile=/var/lib/vman/network/leases',
      '--pid-file=/var/lib/vman/network/dnsmasq.pid',
      '--log-facility=/var/lib/vman/network/dnsmasq.log',
    ]) {
      assert.ok(args.includes(a), `missing ${a} in ${args.join(' ')}`);
    }
    // Daemonizes (no --keep-in-foreground / --no-daemon): it outlives vman like QEMU does.
    assert.ok(!args.some((a) => /keep-in-foreground|no-daemon|^-d$/.test(a)));
  });

  it('writes the netmask of the prefix', () => {
    const a = dnsmasqArgs({ bridge: 'br1', subnet: parseCidr('10.8.0.0/16')!, gateway: parseIpv4('10.8.0.1')!, files });
    assert.ok(a.includes('--dhcp-range=10.8.0.0,static,255.255.0.0'));
  });

  it('refuses names and paths it cannot pass safely', () => {
    assert.throws(() => dnsmasqArgs({ bridge: 'br0,x', subnet, gateway: 1, files }), /invalid bridge name/);
    assert.throws(() => dnsmasqArgs({ bridge: 'br0', subnet, gateway: 1, files: dnsmasqFiles('/var/lib/a,b') }), /without commas/);
    assert.throws(() => dnsmasqArgs({ bridge: 'br0', subnet, gateway: 1, files: dnsmasqFiles('relative/dir') }), /must be absolute/);
  });
});

describe('reservations file', () => {
  const subnet = parseCidr('192.168.77.0/24')!;

  it('has one <mac>,<ip> line per VM, sorted by address', () => {
    const text = renderHostsFile(
      [
        { mac: '52:54:00:00:00:03', address: '192.168.77.100' },
        { mac: '52:54:00:00:00:01', address: '192.168.77.9' },
        { mac: '52:54:00:00:00:02', address: '192.168.77.10' },
      ],
      subnet,
    );
    assert.equal(text, '52:54:00:00:00:01,192.168.77.9\n52:54:00:00:00:02,192.168.77.10\n52:54:00:00:00:03,192.168.77.100\n');
  });

  it('is empty without reservations', () => assert.equal(renderHostsFile([]), ''));

  it('refuses bad or clashing reservations', () => {
    assert.throws(() => renderHostsFile([{ mac: '52:54:00:00:00:0G', address: '192.168.77.9' }]), /invalid MAC address/);
    assert.throws(() => renderHostsFile([{ mac: '52:54:00:00:00:01\n', address: '192.168.77.9' }]), /invalid MAC address/);
    assert.throws(() => renderHostsFile([{ mac: '52:54:00:00:00:01', address: '192.168.77.9,x' }]), /invalid IPv4 address/);
    assert.throws(() => renderHostsFile([{ mac: '52:54:00:00:00:01', address: '10.0.0.9' }], subnet), /outside the subnet/);
    assert.throws(
      () => renderHostsFile([{ mac: '52:54:00:00:00:01', address: '192.168.77.9' }, { mac: '52:54:00:00:00:02', address: '192.168.77.9' }]),
      /two DHCP reservations for one address/,
    );
    assert.throws(
      () => renderHostsFile([{ mac: '52:54:00:00:00:01', address: '192.168.77.9' }, { mac: '52:54:00:00:00:01', address: '192.168.77.10' }]),
      /two DHCP reservations for one MAC/,
    );
  });
});

describe('leases', () => {
  const file = [
    '1764060000 52:54:00:00:00:01 192.168.77.10 * 01:52:54:00:00:00:01',
    '1764060001 52:54:00:00:00:02 192.168.77.11 vman-guest *',
    'duid 00:01:00:01:2c:aa:bb:cc:dd:ee:ff:00:11',
    '',
  ].join('\n');

  it('are read from dnsmasq lease file lines', () => {
    assert.deepEqual(parseLeases(file), [
      { expires: 1764060000, mac: '52:54:00:00:00:01', address: '192.168.77.10', hostname: '*', clientId: '01:52:54:00:00:00:01' },
      { expires: 1764060001, mac: '52:54:00:00:00:02', address: '192.168.77.11', hostname: 'vman-guest', clientId: '*' },
    ]);
  });

  it('without a reservation are dropped, so a released address can go to another MAC', () => {
    const kept = pruneLeases(file, [{ mac: '52:54:00:00:00:02', address: '192.168.77.11' }]);
    assert.deepEqual(parseLeases(kept).map((l) => l.mac), ['52:54:00:00:00:02']);
    assert.match(kept, /^duid /m);
  });

  it('whose address now belongs to another MAC are dropped', () => {
    const kept = pruneLeases(file, [{ mac: '52:54:00:00:00:09', address: '192.168.77.10' }, { mac: '52:54:00:00:00:02', address: '192.168.77.11' }]);
    assert.deepEqual(parseLeases(kept).map((l) => l.address), ['192.168.77.11']);
  });
});

describe('bridge backend', () => {
  it('needs bridge mode and a bridge', () => {
    assert.throws(
      () => new BridgeNetworkBackend(parseNetworkConfig({}), { storagePath: '/tmp/x', reservations: () => [] }),
      (err: unknown) => err instanceof BridgeSetupError && /bridge mode needs a bridge name/.test(err.message),
    );
  });

  it('keeps dnsmasq files in the storage it is given', () => {
    const b = new BridgeNetworkBackend(parseNetworkConfig({ mode: 'bridge', bridge: 'br0' }), { storagePath: '/srv/vman', reservations: () => [] });
    assert.equal(b.files.hostsfile, '/srv/vman/network/dhcp-hosts');
    assert.equal(b.mode, 'bridge');
  });
});
