// Network configuration: validated once at start-up; every refusal names the bad value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';
import { NetworkConfigError, parseNetworkConfig, type NetworkSettings } from '../src/network/config.ts';
import { formatCidr, formatIpv4 } from '../src/network/ipv4.ts';

function refused(settings: NetworkSettings, message: RegExp): void {
  assert.throws(
    () => parseNetworkConfig(settings),
    (err: unknown) => {
      assert.ok(err instanceof NetworkConfigError, `a NetworkConfigError, got ${String(err)}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('network configuration', () => {
  it('defaults to user mode on 10.0.2.0/24 with the range .15-.254', () => {
    const c = parseNetworkConfig({});
    assert.equal(c.mode, 'user');
    assert.equal(c.bridge, null);
    assert.equal(c.vlan, null);
    assert.equal(formatCidr(c.subnet), '10.0.2.0/24');
    assert.equal(formatIpv4(c.gateway), '10.0.2.2');
    assert.equal(formatIpv4(c.rangeStart), '10.0.2.15');
    assert.equal(formatIpv4(c.rangeEnd), '10.0.2.254');
  });

  it('accepts bridge mode with a bridge, a VLAN and its own subnet', () => {
    const c = parseNetworkConfig({ mode: 'bridge', bridge: 'br0', vlan: '42', subnet: '192.168.77.0/24', gateway: '192.168.77.1', range: '192.168.77.10-192.168.77.20' });
    assert.deepEqual([c.mode, c.bridge, c.vlan], ['bridge', 'br0', 42]);
    assert.equal(c.rangeEnd - c.rangeStart + 1, 11);
  });

  describe('refuses', () => {
    it('a mode other than user or bridge', () => refused({ mode: 'nat' }, /mode "nat" is neither "user" nor "bridge"/));

    it('a subnet that is not CIDR', () => {
      refused({ subnet: '10.0.2.0' }, /subnet "10\.0\.2\.0" is not a network in CIDR form/);
      refused({ subnet: '10.0.2.0/33' }, /subnet "10\.0\.2\.0\/33"/);
      refused({ subnet: '10.0.2.0/31' }, /subnet "10\.0\.2\.0\/31"/); // no host addresses to hand out
      refused({ subnet: '10.0.2.1/24' }, /subnet "10\.0\.2\.1\/24" is not a network/); // host bits set
      refused({ subnet: '300.0.2.0/24' }, /subnet "300\.0\.2\.0\/24"/);
      refused({ subnet: 'ten/24' }, /subnet "ten\/24"/);
    });

    it('a gateway outside the subnet or on its network/broadcast address', () => {
      refused({ gateway: '10.0.3.2' }, /gateway 10\.0\.3\.2 is not a host address of subnet 10\.0\.2\.0\/24/);
      refused({ gateway: '10.0.2.0' }, /gateway 10\.0\.2\.0 is not a host address/);
      refused({ gateway: '10.0.2.255' }, /gateway 10\.0\.2\.255 is not a host address/);
      refused({ gateway: '10.0.2' }, /gateway "10\.0\.2" is not an IPv4 address/);
    });

    it('a gateway inside the range', () => refused({ gateway: '10.0.2.20' }, /gateway 10\.0\.2\.20 is inside the range 10\.0\.2\.15-10\.0\.2\.254/));

    it('a range outside the subnet', () => {
      refused({ range: '10.0.3.15-10.0.3.20' }, /range 10\.0\.3\.15-10\.0\.3\.20 is not inside the host addresses of subnet 10\.0\.2\.0\/24/);
      refused({ range: '10.0.2.200-10.0.3.5' }, /is not inside the host addresses/);
      refused({ range: '10.0.2.15-10.0.2.255' }, /is not inside the host addresses/); // the broadcast address
    });

    it('a range that is not first-last or runs backwards', () => {
      refused({ range: '10.0.2.15' }, /range "10\.0\.2\.15" is not "first-last"/);
      refused({ range: '10.0.2.15-10.0.2.16-10.0.2.17' }, /is not "first-last"/);
      refused({ range: '10.0.2.20-10.0.2.15' }, /range 10\.0\.2\.20-10\.0\.2\.15 starts after it ends/);
    });

    it("in user mode, a range holding QEMU's DNS address", () =>
      refused({ range: '10.0.2.3-10.0.2.10', gateway: '10.0.2.2' }, /holds 10\.0\.2\.3, QEMU's user-mode DNS address/));

    it('a VLAN id that is not 1 to 4094', () => {
      for (const vlan of ['0', '4095', '-1', 'abc', '1.5', '12345']) {
        refused({ mode: 'bridge', bridge: 'br0', vlan }, new RegExp(`VLAN id "${vlan.replace('.', '\\.')}" is not a number from 1 to 4094`));
      }
    });

    it('bridge mode without a bridge', () => {
      refused({ mode: 'bridge' }, /bridge mode needs a bridge name/);
      refused({ mode: 'bridge', bridge: '  ' }, /bridge mode needs a bridge name/);
    });

    it('a bridge name that is no interface name', () => {
      refused({ mode: 'bridge', bridge: 'a-bridge-name-too-long' }, /bridge name "a-bridge-name-too-long" is not a valid interface name/);
      refused({ mode: 'bridge', bridge: 'br0;reboot' }, /bridge name "br0;reboot"/);
    });
  });

  it('reaches vman start-up as a ConfigError naming the setting', () => {
    assert.throws(() => loadConfig({ VMAN_NETWORK_MODE: 'bridge' }), (err: unknown) => err instanceof ConfigError && /bridge mode needs a bridge name/.test(err.message));
    assert.throws(() => loadConfig({ VMAN_VLAN: '5000' }), (err: unknown) => err instanceof ConfigError && /VLAN id "5000"/.test(err.message));
    const c = loadConfig({ VMAN_NETWORK_MODE: 'bridge', VMAN_BRIDGE: 'br0', VMAN_VLAN: '7', VMAN_RANGE: '10.0.2.100-10.0.2.110' });
    assert.deepEqual([c.network.mode, c.network.bridge, c.network.vlan, formatIpv4(c.network.rangeStart)], ['bridge', 'br0', 7, '10.0.2.100']);
  });
});

describe('settings that only bridge mode uses', () => {
  it('refuses a bridge or a VLAN in user mode instead of ignoring them', async () => {
    const { parseNetworkConfig } = await import('../src/network/config.ts');
    assert.throws(() => parseNetworkConfig({ mode: 'user', bridge: 'br0' }), /only applies in bridge mode/);
    assert.throws(() => parseNetworkConfig({ vlan: '42' }), /only applies in bridge mode/);
  });
});
