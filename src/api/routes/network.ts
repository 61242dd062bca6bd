// /api/v1/network: the configuration and who holds which address.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { VmanDb } from '../../db/database.ts';
import { formatCidr, formatIpv4 } from '../../network/ipv4.ts';
import type { NetworkConfig } from '../../network/config.ts';

const Network = Type.Object({
  mode: Type.String(),
  bridge: Type.Union([Type.String(), Type.Null()]),
  vlan: Type.Union([Type.Integer(), Type.Null()]),
  subnet: Type.String(),
  gateway: Type.String(),
  range: Type.Object({ start: Type.String(), end: Type.String(), size: Type.Integer() }),
  allocations: Type.Array(Type.Object({ address: Type.String(), vm_id: Type.String(), vm_name: Type.String(), allocated_at: Type.String() })),
});

export const networkRoutes = (config: NetworkConfig, db: VmanDb): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/network', { schema: { tags: ['network'], response: { 200: Network } } }, async () => {
    const names = new Map(db.vms.list().map((v) => [v.id, v.name]));
    return {
      mode: config.mode,
      bridge: config.bridge,
      vlan: config.vlan,
      subnet: formatCidr(config.subnet),
      gateway: formatIpv4(config.gateway),
      range: { start: formatIpv4(config.rangeStart), end: formatIpv4(config.rangeEnd), size: config.rangeEnd - config.rangeStart + 1 },
      allocations: db.addresses.list().map((a) => ({ address: a.address, vm_id: a.vmId, vm_name: names.get(a.vmId) ?? '', allocated_at: a.allocatedAt })),
    };
  });
};
