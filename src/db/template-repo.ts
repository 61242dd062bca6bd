import type Database from 'better-sqlite3';
import type { NewTemplate, Readiness, TemplateRecord } from './types.ts';

interface TemplateRow {
  id: string;
  name: string;
  cpus: number;
  memory_mb: number;
  kernel_path: string | null;
  initrd_path: string | null;
  cmdline: string | null;
  base_image_path: string | null;
  base_image_format: 'qcow2' | 'raw' | null;
  builtin: number;
  readiness: Readiness;
  ready_pattern: string | null;
  ssh_keys: string;
  created_at: string;
}

type TemplateParams = Omit<TemplateRow, 'builtin'> & { builtin: 0 | 1 };

function toRecord(r: TemplateRow): TemplateRecord {
  return {
    id: r.id,
    name: r.name,
    cpus: r.cpus,
    memoryMb: r.memory_mb,
    kernelPath: r.kernel_path,
    initrdPath: r.initrd_path,
    cmdline: r.cmdline,
    baseImagePath: r.base_image_path,
    baseImageFormat: r.base_image_format,
    builtin: r.builtin !== 0,
    readiness: r.readiness,
    readyPattern: r.ready_pattern,
    sshKeys: JSON.parse(r.ssh_keys) as string[],
    createdAt: r.created_at,
  };
}

export class TemplateRepo {
  private readonly insertStmt: Database.Statement<[TemplateParams], TemplateRow>;
  private readonly getStmt: Database.Statement<[string], TemplateRow>;
  private readonly getByNameStmt: Database.Statement<[string], TemplateRow>;
  private readonly listStmt: Database.Statement<[], TemplateRow>;
  private readonly deleteStmt: Database.Statement<[string]>;
  private readonly countVmsStmt: Database.Statement<[string], number>;
  private readonly setBootStmt: Database.Statement<[string | null, string | null, string | null, string]>;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare<TemplateParams, TemplateRow>(
      `INSERT INTO templates (id, name, cpus, memory_mb, kernel_path, initrd_path, cmdline,
         base_image_path, base_image_format, builtin, readiness, ready_pattern, ssh_keys, created_at)
       VALUES (@id, @name, @cpus, @memory_mb, @kernel_path, @initrd_path, @cmdline,
         @base_image_path, @base_image_format, @builtin, @readiness, @ready_pattern, @ssh_keys, @created_at)
       RETURNING *`,
    );
    this.getStmt = db.prepare<[string], TemplateRow>('SELECT * FROM templates WHERE id = ?');
    this.getByNameStmt = db.prepare<[string], TemplateRow>('SELECT * FROM templates WHERE name = ?');
    this.listStmt = db.prepare<[], TemplateRow>('SELECT * FROM templates ORDER BY created_at, name');
    this.deleteStmt = db.prepare<[string]>('DELETE FROM templates WHERE id = ?');
    this.countVmsStmt = db.prepare<[string], number>('SELECT COUNT(*) FROM vms WHERE template_id = ?').pluck();
    this.setBootStmt = db.prepare<[string | null, string | null, string | null, string]>(
      'UPDATE templates SET kernel_path = ?, initrd_path = ?, cmdline = ? WHERE id = ? AND builtin = 1',
    );
  }

  insert(t: NewTemplate): TemplateRecord {
    const row = this.insertStmt.get({
      id: t.id,
      name: t.name,
      cpus: t.cpus,
      memory_mb: t.memoryMb,
      kernel_path: t.kernelPath,
      initrd_path: t.initrdPath,
      cmdline: t.cmdline,
      base_image_path: t.baseImagePath,
      base_image_format: t.baseImageFormat,
      // SQLite has no boolean type and better-sqlite3 refuses to bind JS booleans.
      builtin: t.builtin ? 1 : 0,
      readiness: t.readiness ?? 'agent',
      ready_pattern: t.readyPattern ?? null,
      ssh_keys: JSON.stringify(t.sshKeys ?? []),
      created_at: new Date().toISOString(),
    });
    if (row === undefined) throw new Error(`insert of template ${t.id} returned no row`);
    return toRecord(row);
  }

  get(id: string): TemplateRecord | undefined {
    const row = this.getStmt.get(id);
    return row && toRecord(row);
  }

  getByName(name: string): TemplateRecord | undefined {
    const row = this.getByNameStmt.get(name);
    return row && toRecord(row);
  }

  list(): TemplateRecord[] {
    return this.listStmt.all().map(toRecord);
  }

  /** Throws SqliteError 'FOREIGN KEY constraint failed' (code SQLITE_CONSTRAINT_TRIGGER: RESTRICT) while VMs use it. */
  /** Points a built-in template at other boot files (a rebuilt guest image); user templates are never changed. */
  setBuiltinBoot(id: string, boot: { kernel: string | null; initrd: string | null; cmdline: string | null }): void {
    this.setBootStmt.run(boot.kernel, boot.initrd, boot.cmdline, id);
  }

  delete(id: string): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }

  countVms(id: string): number {
    return this.countVmsStmt.get(id) ?? 0;
  }
}
