// The validators and serializers of the routes' schemas, shared by every app
// in one process. They are pure functions of their schema, yet Fastify builds
// them again for each app it makes: ~0.2 s of ajv and fast-json-stringify per
// app, paid by every in-process vman the acceptance suite and unit tests start.
// Ajv keeps what it compiled per schema object in each pooled instance; the
// serializers are kept here by the schema's text, beside the externals and
// options they were built with: Fastify hands each app its own copy of a
// response schema, so a cache by object never hit (0.67 s of fast-json-stringify
// in 40 apps).
import AjvCompiler from '@fastify/ajv-compiler';
import SerializerSelector from '@fastify/fast-json-stringify-compiler';

type Serialize = (data: unknown) => string;
interface SerializerContext { schema: object; method: string; url: string; httpStatus: string }
type BuildSerializer = (externalSchemas: unknown, options: unknown) => (ctx: SerializerContext) => Serialize;

const buildValidator = AjvCompiler();
const serializerSelector = SerializerSelector() as unknown as BuildSerializer;
const serializers = new Map<string, Map<string, Serialize>>();

function buildSerializer(externalSchemas: unknown, options: unknown): (ctx: SerializerContext) => Serialize {
  const key = `${JSON.stringify(externalSchemas)}${JSON.stringify(options ?? {})}`;
  let cache = serializers.get(key);
  if (!cache) serializers.set(key, (cache = new Map()));
  const compile = serializerSelector(externalSchemas, options);
  return (ctx) => {
    const text = JSON.stringify(ctx.schema);
    let serialize = cache.get(text);
    if (!serialize) cache.set(text, (serialize = compile(ctx)));
    return serialize;
  };
}

/** Fastify's `schemaController` option: its own compilers, pooled for the process. */
export const sharedSchemaController = { compilersFactory: { buildValidator, buildSerializer } };
