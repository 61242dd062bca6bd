// Templates: how a VM boots (kernel + initrd + command line, a base image, or
// both) and how big it is. small, medium and large exist out of the box and
// boot the built test guest.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ImageDirs } from './image-dirs.ts';
import type { VmanDb } from '../db/database.ts';
import type { Readiness, TemplateRecord } from '../db/types.ts';
import { conflict, invalid, notFoundByRef } from '../errors.ts';
import { assertName, InvalidNameError } from '../names.ts';

export interface TemplateInput {
  name: string;
  cpus: number;
  memoryMb: number;
  kernelPath?: string | null;
  initrdPath?: string | null;
  cmdline?: string | null;
  baseImagePath?: string | null;
  baseImageFormat?: 'qcow2' | 'raw' | null;
  readiness?: Readiness;
  readyPattern?: string | null;
  sshKeys?: string[];
}

export interface BootFiles {
  kernel: string;
  initrd: string;
  cmdline: string;
}

/** The plan's standard sizes. */
export const BUILTIN_TEMPLATES = [
  { name: 'small', cpus: 1, memoryMb: 512 },
  { name: 'medium', cpus: 2, memoryMb: 1024 },
  { name: 'large', cpus: 4, memoryMb: 2048 },
] as const;

export const MAX_MEMORY_MB = 1024 * 1024;

export interface TemplateServiceOptions {
  imageDirs: ImageDirs;
  qemuImg: string;
}

export class TemplateService {
  constructor(private readonly db: VmanDb, private readonly o: TemplateServiceOptions) {}

  /** Creates the built-in templates, or points them at the current guest image. */
  ensureBuiltins(guest: BootFiles): void {
    this.db.transaction(() => {
      for (const t of BUILTIN_TEMPLATES) {
        const existing = this.db.templates.getByName(t.name);
        if (existing) this.db.templates.setBuiltinBoot(existing.id, { kernel: guest.kernel, initrd: guest.initrd, cmdline: guest.cmdline });
        else this.db.templates.insert({
          id: `tpl-${t.name}`, name: t.name, cpus: t.cpus, memoryMb: t.memoryMb,
          kernelPath: guest.kernel, initrdPath: guest.initrd, cmdline: guest.cmdline,
          baseImagePath: null, baseImageFormat: null, builtin: true,
        });
      }
    });
  }

  async create(input: TemplateInput): Promise<TemplateRecord> {
    try {
      assertName('template name', input.name);
    } catch (err) {
      throw invalid('invalid-name', (err as InvalidNameError).message, err);
    }
    // Templates are found by id or by name: a name shaped like an id would hide another template.
    if (input.name.startsWith('tpl-')) throw invalid('invalid-name', `template names may not start with "tpl-" (reserved for template ids): ${input.name}`);
    if (!Number.isInteger(input.cpus) || input.cpus < 1 || input.cpus > 64) throw invalid('invalid-cpus', `cpus must be an integer from 1 to 64, not ${input.cpus}`);
    if (!Number.isInteger(input.memoryMb) || input.memoryMb < 64 || input.memoryMb > MAX_MEMORY_MB) {
      throw invalid('invalid-memory', `memory_mb must be an integer from 64 to ${MAX_MEMORY_MB}, not ${input.memoryMb}`);
    }
    if (!input.kernelPath && !input.baseImagePath) throw invalid('no-boot-source', 'a template needs kernel_path, base_image_path, or both');
    if (input.initrdPath && !input.kernelPath) throw invalid('initrd-without-kernel', 'initrd_path needs kernel_path');
    if (input.cmdline && !input.kernelPath) throw invalid('cmdline-without-kernel', 'cmdline needs kernel_path');
    if (input.cmdline && (input.cmdline.length > 2048 || /[\x00-\x1f\x7f]/.test(input.cmdline))) {
      throw invalid('invalid-cmdline', 'cmdline must be at most 2048 printable characters');
    }
    if (input.baseImagePath && !input.baseImageFormat) throw invalid('no-image-format', 'base_image_path needs base_image_format (qcow2 or raw)');
    if ((input.readiness === 'serial') !== Boolean(input.readyPattern)) {
      throw invalid('ready-pattern', input.readiness === 'serial' ? 'readiness serial needs ready_pattern (what a console line must match)' : 'ready_pattern only applies to readiness serial');
    }
    if (input.readyPattern) {
      try {
        new RegExp(input.readyPattern);
      } catch (err) {
        throw invalid('ready-pattern', `ready_pattern is not a regular expression: ${(err as Error).message}`);
      }
    }
    for (const [field, p] of [['kernel_path', input.kernelPath], ['initrd_path', input.initrdPath], ['base_image_path', input.baseImagePath]] as const) {
      if (!p) continue;
      await assertReadableFile(field, p);
      await this.o.imageDirs.assertInside(field, p);
    }
    if (input.baseImagePath && input.baseImageFormat) await this.o.imageDirs.assertBaseImage(input.baseImagePath, input.baseImageFormat, { qemuImg: this.o.qemuImg });
    if (this.db.templates.getByName(input.name)) throw conflict('template-name-taken', `a template named ${input.name} already exists`);
    return this.db.templates.insert({
      id: `tpl-${randomBytes(6).toString('hex')}`,
      name: input.name,
      cpus: input.cpus,
      memoryMb: input.memoryMb,
      kernelPath: input.kernelPath ?? null,
      initrdPath: input.initrdPath ?? null,
      cmdline: input.cmdline ?? null,
      baseImagePath: input.baseImagePath ?? null,
      baseImageFormat: input.baseImagePath ? (input.baseImageFormat ?? null) : null,
      builtin: false,
      readiness: input.readiness ?? 'agent',
      readyPattern: input.readyPattern ?? null,
      sshKeys: input.sshKeys ?? [],
    });
  }

  /** Every template, or those whose name contains `filter.name`. */
  list(filter: { name?: string } = {}): TemplateRecord[] {
    return this.db.templates.list().filter((t) => filter.name === undefined || t.name.includes(filter.name));
  }

  /** By id, or by name (VMs are often created "from the small template"). */
  get(idOrName: string): TemplateRecord {
    const t = this.db.templates.get(idOrName) ?? this.db.templates.getByName(idOrName);
    if (!t) throw notFoundByRef('template', 'template', idOrName);
    return t;
  }

  delete(idOrName: string): void {
    const t = this.get(idOrName);
    const id = t.id;
    if (t.builtin) throw conflict('template-builtin', `template ${t.name} is built in and cannot be deleted`);
    const users = this.db.templates.countVms(id);
    if (users > 0) throw conflict('template-in-use', `template ${t.name} is used by ${users} VM(s); delete them first`);
    this.db.templates.delete(id);
  }
}

async function assertReadableFile(field: string, p: string): Promise<void> {
  if (!path.isAbsolute(p) || path.normalize(p) !== p || /[\x00-\x1f\x7f]/.test(p) || p.length > 1024) {
    throw invalid('invalid-path', `${field} must be a normalised absolute path without control characters`);
  }
  const s = await stat(p).catch(() => undefined);
  if (!s?.isFile()) throw invalid('file-not-found', `${field} ${p} is not an existing file`);
}
