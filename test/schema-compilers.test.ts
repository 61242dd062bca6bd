import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify, { type FastifyServerOptions } from 'fastify';
import { sharedSchemaController } from '../src/api/schema-compilers.ts';

const { buildSerializer } = sharedSchemaController.compilersFactory;
const vmSchema = () => ({ type: 'object', properties: { id: { type: 'string' }, cpus: { type: 'integer' } } });
const ctx = (schema: object) => ({ schema, method: 'GET', url: '/vms/:id', httpStatus: '200' });

test('a response schema handed over again as a new object gets the serializer compiled the first time', () => {
  // Fastify gives each app its own copy of a route's response schema: the cache must go by content.
  const first = buildSerializer({}, {})(ctx(vmSchema()));
  const second = buildSerializer({}, {})(ctx(vmSchema()));
  assert.equal(second, first);
  assert.equal(first({ id: 'vm-1', cpus: 2, secret: 'x' }), '{"id":"vm-1","cpus":2}');
});

test('a schema that differs gets a serializer of its own', () => {
  const a = buildSerializer({}, {})(ctx(vmSchema()));
  const b = buildSerializer({}, {})(ctx({ type: 'object', properties: { id: { type: 'string' } } }));
  assert.notEqual(b, a);
  assert.equal(b({ id: 'vm-1', cpus: 2 }), '{"id":"vm-1"}');
});

test('different externals or options are different caches', () => {
  const plain = buildSerializer({}, {})(ctx(vmSchema()));
  const withOptions = buildSerializer({}, { rounding: 'ceil' })(ctx(vmSchema()));
  assert.notEqual(withOptions, plain);
});

test('two Fastify apps with the shared controller answer with the same serializer output', async () => {
  const apps = [0, 1].map(() => {
    const app = Fastify({ schemaController: sharedSchemaController as unknown as FastifyServerOptions['schemaController'] });
    app.get('/vms/:id', { schema: { response: { 200: vmSchema() } } }, () => ({ id: 'vm-1', cpus: 2, secret: 'x' }));
    return app;
  });
  try {
    for (const app of apps) {
      const res = await app.inject({ method: 'GET', url: '/vms/vm-1' });
      assert.equal(res.body, '{"id":"vm-1","cpus":2}');
    }
  } finally {
    await Promise.all(apps.map((a) => a.close()));
  }
});
