// Tasks about templates: what a user asks of vman's template API, one call each.
import type { VmanWorld } from '../world/vman-world.ts';
import { expectStatus } from './vm-tasks.ts';

export interface TemplateSpec {
  cpus: number;
  memoryMb: number;
  /** Boot files; the test guest's by default (kernel null: the base image boots by its own bootloader). */
  kernel?: string | null;
  initrd?: string | null;
  cmdline?: string | null;
  baseImage?: { path: string; format: 'qcow2' | 'raw' };
  readiness?: 'agent' | 'ssh' | 'serial' | 'none';
  readyPattern?: string;
}

/** A template that boots the test guest (its kernel and initrd), sized as asked; remembered by name. */
export async function createTemplate(world: VmanWorld, name: string, spec: TemplateSpec): Promise<string> {
  const g = world.host.guest;
  const kernel = spec.kernel === undefined ? g.kernel : spec.kernel;
  const res = await world.api().http.post('api/v1/templates', {
    json: {
      name, cpus: spec.cpus, memory_mb: spec.memoryMb,
      ...(kernel !== null ? { kernel_path: kernel, initrd_path: spec.initrd ?? g.initrd, cmdline: spec.cmdline ?? g.cmdline } : {}),
      ...(spec.baseImage ? { base_image_path: spec.baseImage.path, base_image_format: spec.baseImage.format } : {}),
      ...(spec.readiness ? { readiness: spec.readiness } : {}),
      ...(spec.readyPattern ? { ready_pattern: spec.readyPattern } : {}),
    },
  });
  const t = expectStatus<{ id: string }>(res, 201, `create template ${name}`);
  world.ids.set(`template:${name}`, t.id);
  return t.id;
}

export async function deleteTemplate(world: VmanWorld, name: string): Promise<void> {
  expectStatus(await world.api().http.delete(`api/v1/templates/${world.idOf(`template:${name}`)}`), 204, `delete template ${name}`);
}
