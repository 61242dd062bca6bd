// IPv4 arithmetic on 32-bit unsigned integers.

const OCTETS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(text: string): number | undefined {
  const m = OCTETS.exec(text);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255) || m.slice(1).some((p) => p.length > 1 && p.startsWith('0'))) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Cidr {
  network: number;
  prefix: number;
  /** First and last address of the block (network and broadcast). */
  first: number;
  last: number;
}

export function parseCidr(text: string): Cidr | undefined {
  const [addr, prefixText, extra] = text.split('/');
  if (extra !== undefined || addr === undefined || prefixText === undefined || !/^\d{1,2}$/.test(prefixText)) return undefined;
  const ip = parseIpv4(addr);
  const prefix = Number(prefixText);
  if (ip === undefined || prefix < 8 || prefix > 30) return undefined;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  if ((ip & mask) >>> 0 !== ip) return undefined; // host bits set: not a network address
  return { network: ip, prefix, first: ip, last: (ip | (~mask >>> 0)) >>> 0 };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.network)}/${c.prefix}`;
}

export function inCidr(c: Cidr, ip: number): boolean {
  return ip >= c.first && ip <= c.last;
}
