// Network configuration: validated once at start-up; a bad one stops vman
// with a message that names the bad value.
import { formatIpv4, inCidr, parseCidr, parseIpv4, type Cidr } from './ipv4.ts';

export type NetworkMode = 'user' | 'bridge';

export interface NetworkConfig {
  mode: NetworkMode;
  bridge: string | null;
  vlan: number | null;
  subnet: Cidr;
  gateway: number;
  rangeStart: number;
  rangeEnd: number;
  /** User mode: keep guests from reaching anything outside (QEMU's restrict=on). Off by default: cloud-init and apt need the way out. */
  restrict: boolean;
}

export interface NetworkSettings {
  restrict?: string | undefined;
  mode?: string | undefined;
  bridge?: string | undefined;
  vlan?: string | undefined;
  subnet?: string | undefined;
  gateway?: string | undefined;
  /** "first-last", e.g. 10.0.2.15-10.0.2.254 */
  range?: string | undefined;
}

export class NetworkConfigError extends Error {
  constructor(message: string) {
    super(`network configuration: ${message}`);
    this.name = 'NetworkConfigError';
  }
}

export const DEFAULT_NETWORK: Required<Omit<NetworkSettings, 'bridge' | 'vlan' | 'restrict'>> = {
  mode: 'user',
  subnet: '10.0.2.0/24',
  // QEMU's user-mode network answers DHCP from .2 and DNS from .3 by default.
  gateway: '10.0.2.2',
  range: '10.0.2.15-10.0.2.254',
};

const BRIDGE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function parseNetworkConfig(s: NetworkSettings): NetworkConfig {
  const mode = s.mode ?? DEFAULT_NETWORK.mode;
  if (mode !== 'user' && mode !== 'bridge') throw new NetworkConfigError(`mode ${JSON.stringify(mode)} is neither "user" nor "bridge"`);

  const subnetText = s.subnet ?? DEFAULT_NETWORK.subnet;
  const subnet = parseCidr(subnetText);
  if (!subnet) throw new NetworkConfigError(`subnet ${JSON.stringify(subnetText)} is not a network in CIDR form (a.b.c.d/8..30, host bits zero)`);

  const gatewayText = s.gateway ?? DEFAULT_NETWORK.gateway;
  const gateway = parseIpv4(gatewayText);
  if (gateway === undefined) throw new NetworkConfigError(`gateway ${JSON.stringify(gatewayText)} is not an IPv4 address`);
  if (!inCidr(subnet, gateway) || gateway === subnet.first || gateway === subnet.last) {
    throw new NetworkConfigError(`gateway ${gatewayText} is not a host address of subnet ${subnetText}`);
  }

  const rangeText = s.range ?? DEFAULT_NETWORK.range;
  const [a, b, extra] = rangeText.split('-');
  const rangeStart = a === undefined ? undefined : parseIpv4(a.trim());
  const rangeEnd = b === undefined ? undefined : parseIpv4(b.trim());
  if (rangeStart === undefined || rangeEnd === undefined || extra !== undefined) {
    throw new NetworkConfigError(`range ${JSON.stringify(rangeText)} is not "first-last" with two IPv4 addresses`);
  }
  if (rangeStart > rangeEnd) throw new NetworkConfigError(`range ${rangeText} starts after it ends`);
  if (rangeStart <= subnet.first || rangeEnd >= subnet.last) {
    throw new NetworkConfigError(`range ${rangeText} is not inside the host addresses of subnet ${subnetText}`);
  }
  if (gateway >= rangeStart && gateway <= rangeEnd) throw new NetworkConfigError(`gateway ${gatewayText} is inside the range ${rangeText}`);
  const dns = subnet.first + 3;
  if (mode === 'user' && dns >= rangeStart && dns <= rangeEnd) {
    throw new NetworkConfigError(`range ${rangeText} holds ${formatIpv4(dns)}, QEMU's user-mode DNS address`);
  }

  const bridge = s.bridge?.trim() || null;
  if (bridge !== null && !BRIDGE_NAME.test(bridge)) throw new NetworkConfigError(`bridge name ${JSON.stringify(bridge)} is not a valid interface name`);
  if (mode === 'bridge' && bridge === null) throw new NetworkConfigError('bridge mode needs a bridge name');

  let vlan: number | null = null;
  if (s.vlan !== undefined && s.vlan.trim() !== '') {
    if (!/^\d{1,4}$/.test(s.vlan.trim()) || Number(s.vlan) < 1 || Number(s.vlan) > 4094) {
      throw new NetworkConfigError(`VLAN id ${JSON.stringify(s.vlan)} is not a number from 1 to 4094`);
    }
    vlan = Number(s.vlan);
  }
  // Accepting them in user mode would show settings that nothing applies.
  if (mode === 'user' && (bridge !== null || vlan !== null)) {
    throw new NetworkConfigError(`${bridge !== null ? 'a bridge' : 'a VLAN'} only applies in bridge mode (VMAN_NETWORK_MODE=bridge); user mode has neither`);
  }
  const restrictText = s.restrict?.trim() ?? '';
  if (restrictText !== '' && !['0', '1', 'true', 'false'].includes(restrictText)) {
    throw new NetworkConfigError(`restrict ${JSON.stringify(s.restrict)} is neither 1/true nor 0/false`);
  }
  const restrict = restrictText === '1' || restrictText === 'true';
  if (mode === 'bridge' && restrict) throw new NetworkConfigError('restrict only applies in user mode; in bridge mode the bridge decides what guests reach');
  return { mode, bridge, vlan, subnet, gateway, rangeStart, rangeEnd, restrict };
}
