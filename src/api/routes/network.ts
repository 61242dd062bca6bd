// /api/v1/network: the configuration and who holds which address.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@fastify/type-provider-typebox';
import type { NetworkService } from '../../services/network-service.ts';

const Network = Type.Object({
  mode: Type.String(),
  bridge: Type.Union([Type.String(), Type.Null()]),
  vlan: Type.Union([Type.Integer(), Type.Null()]),
  subnet: Type.String(),
  gateway: Type.String(),
  range: Type.Object({ start: Type.String(), end: Type.String(), size: Type.Integer() }),
  allocations: Type.Array(Type.Object({ address: Type.String(), vm_id: Type.String(), vm_name: Type.String(), allocated_at: Type.String() })),
});

export const networkRoutes = (network: NetworkService): FastifyPluginAsyncTypebox => async (app) => {
  app.get('/network', {
    schema: { tags: ['network'], summary: 'The network configuration and who holds which address', operationId: 'getNetwork', response: { 200: Network } },
  }, async () => network.view());
};
