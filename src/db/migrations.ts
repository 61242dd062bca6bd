import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  name: string;
  up: string;
  /**
   * Rebuilds a table other tables refer to (SQLite changes a CHECK only by
   * copying the table): foreign keys are off while it runs, as SQLite's own
   * procedure says, and checked before it commits.
   */
  rebuildsReferencedTable?: true;
}

// Append-only: never edit a migration that has shipped, add a new version instead.
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    up: `
      CREATE TABLE templates (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        cpus INTEGER NOT NULL CHECK (cpus BETWEEN 1 AND 64),
        memory_mb INTEGER NOT NULL CHECK (memory_mb >= 16),
        kernel_path TEXT,
        initrd_path TEXT,
        cmdline TEXT,
        base_image_path TEXT,
        base_image_format TEXT CHECK (base_image_format IN ('qcow2', 'raw')),
        builtin INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        CHECK (kernel_path IS NOT NULL OR base_image_path IS NOT NULL)
      );

      CREATE TABLE vms (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        template_id TEXT NOT NULL REFERENCES templates(id) ON DELETE RESTRICT,
        state TEXT NOT NULL CHECK (state IN ('created', 'starting', 'running', 'stopping', 'stopped', 'error')),
        state_reason TEXT,
        pid INTEGER,
        mac TEXT NOT NULL UNIQUE,
        storage_dir TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX vms_state_idx ON vms(state);
      -- Foreign-key checks on templates deletes scan vms by template_id.
      CREATE INDEX vms_template_id_idx ON vms(template_id);

      CREATE TABLE disks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        size_gb INTEGER NOT NULL CHECK (size_gb > 0),
        format TEXT NOT NULL CHECK (format IN ('qcow2')),
        path TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL CHECK (state IN ('available', 'attached')),
        vm_id TEXT REFERENCES vms(id) ON DELETE RESTRICT,
        mount_point TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        CHECK ((state = 'attached') = (vm_id IS NOT NULL))
      );
      CREATE INDEX disks_vm_id_idx ON disks(vm_id);

      CREATE TABLE address_allocations (
        address TEXT PRIMARY KEY,
        vm_id TEXT NOT NULL UNIQUE REFERENCES vms(id) ON DELETE CASCADE,
        allocated_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'intent journal',
    // What a multi-step operation is about to do, written before its first side
    // effect and removed after its last: what start-up recovery finishes or undoes.
    // No foreign keys: a VM or disk row may go before the intent that removes it.
    up: `
      CREATE TABLE intents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        op TEXT NOT NULL CHECK (op IN ('vm.create', 'vm.start', 'vm.stop', 'vm.delete', 'disk.create', 'disk.attach', 'disk.detach', 'disk.delete')),
        vm_id TEXT,
        disk_id TEXT,
        detail TEXT NOT NULL,
        owner TEXT NOT NULL,
        started_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'real guests',
    // How a template's guest shows it is ready, and the keys cloud-init gives it;
    // per VM: its keys and user-data, its forwarded SSH port, the address its
    // guest reported, and how it was last stopped.
    up: `
      ALTER TABLE templates ADD COLUMN readiness TEXT NOT NULL DEFAULT 'agent' CHECK (readiness IN ('agent', 'ssh', 'serial', 'none'));
      ALTER TABLE templates ADD COLUMN ready_pattern TEXT;
      ALTER TABLE templates ADD COLUMN ssh_keys TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE vms ADD COLUMN ssh_keys TEXT NOT NULL DEFAULT '[]';
      ALTER TABLE vms ADD COLUMN user_data TEXT;
      ALTER TABLE vms ADD COLUMN ssh_port INTEGER;
      ALTER TABLE vms ADD COLUMN guest_address TEXT;
      ALTER TABLE vms ADD COLUMN stop_method TEXT CHECK (stop_method IN ('agent', 'acpi', 'quit', 'kill'));
    `,
  },
  {
    version: 4,
    name: 'snapshots',
    rebuildsReferencedTable: true,
    // The states of saving and restoring a VM's memory; per VM its recorded
    // hardware (device_model), the snapshot its next start resumes (a clone's
    // first start) and the snapshot it was cloned from; the snapshots; and the
    // intents of the operations on them.
    up: `
      CREATE TABLE vms_new (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        template_id TEXT NOT NULL REFERENCES templates(id) ON DELETE RESTRICT,
        state TEXT NOT NULL CHECK (state IN ('created', 'starting', 'running', 'stopping', 'stopped', 'error', 'saving', 'restoring')),
        state_reason TEXT,
        pid INTEGER,
        mac TEXT NOT NULL UNIQUE,
        storage_dir TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        ssh_keys TEXT NOT NULL DEFAULT '[]',
        user_data TEXT,
        ssh_port INTEGER,
        guest_address TEXT,
        stop_method TEXT CHECK (stop_method IN ('agent', 'acpi', 'quit', 'kill')),
        device_model TEXT,
        resume_from TEXT REFERENCES snapshots(id) ON DELETE RESTRICT,
        origin_snapshot_id TEXT REFERENCES snapshots(id) ON DELETE RESTRICT
      );
      INSERT INTO vms_new (id, name, template_id, state, state_reason, pid, mac, storage_dir, created_at, updated_at, ssh_keys, user_data, ssh_port, guest_address, stop_method)
        SELECT id, name, template_id, state, state_reason, pid, mac, storage_dir, created_at, updated_at, ssh_keys, user_data, ssh_port, guest_address, stop_method FROM vms;
      DROP TABLE vms;
      ALTER TABLE vms_new RENAME TO vms;
      CREATE INDEX vms_state_idx ON vms(state);
      CREATE INDEX vms_template_id_idx ON vms(template_id);
      CREATE INDEX vms_origin_idx ON vms(origin_snapshot_id);

      CREATE TABLE snapshots (
        id TEXT PRIMARY KEY,
        vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE RESTRICT,
        name TEXT NOT NULL,
        with_memory INTEGER NOT NULL CHECK (with_memory IN (0, 1)),
        dir TEXT NOT NULL UNIQUE,
        hardware TEXT NOT NULL,
        disks TEXT NOT NULL,
        guest_address TEXT,
        pause_ms INTEGER,
        state_bytes INTEGER,
        created_at TEXT NOT NULL,
        UNIQUE (vm_id, name)
      );

      CREATE TABLE intents_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        op TEXT NOT NULL CHECK (op IN ('vm.create', 'vm.start', 'vm.stop', 'vm.delete', 'vm.snapshot', 'vm.revert', 'vm.snapshot-delete',
          'disk.create', 'disk.attach', 'disk.detach', 'disk.delete')),
        vm_id TEXT,
        disk_id TEXT,
        detail TEXT NOT NULL,
        owner TEXT NOT NULL,
        started_at TEXT NOT NULL
      );
      INSERT INTO intents_new SELECT * FROM intents;
      DROP TABLE intents;
      ALTER TABLE intents_new RENAME TO intents;
    `,
  },
  {
    version: 5,
    name: 'qemu identity',
    // The unprivileged user and group a VM's QEMU runs as when vman runs as
    // root (src/operator/confinement.ts): the uid is the VM's own; the gid is
    // shared by a VM and its clones, which read their origin's snapshot images.
    up: `
      ALTER TABLE vms ADD COLUMN qemu_uid INTEGER;
      ALTER TABLE vms ADD COLUMN qemu_gid INTEGER;
      CREATE UNIQUE INDEX vms_qemu_uid_idx ON vms(qemu_uid) WHERE qemu_uid IS NOT NULL;
    `,
  },
];

function assertOrdered(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    const prev = migrations[i - 1];
    if (!Number.isInteger(m.version) || m.version < 1 || (prev !== undefined && m.version <= prev.version)) {
      throw new Error(`migrations must have strictly increasing positive integer versions (at '${m.name}')`);
    }
  });
}

/**
 * Applies every migration not yet recorded in schema_migrations, each in its own
 * IMMEDIATE transaction. Returns the number applied. Throws if the database was
 * written by a newer vman (its schema may be incompatible with this code).
 */
export function applyMigrations(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  assertOrdered(migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
  )`);

  const knownMax = migrations.at(-1)?.version ?? 0;
  const dbMax = currentSchemaVersion(db);
  if (dbMax > knownMax) {
    throw new Error(
      `database schema version ${dbMax} is newer than this vman supports (${knownMax}); ` +
        'upgrade vman or use a different state directory',
    );
  }

  const isApplied = db.prepare<[number], number>('SELECT 1 FROM schema_migrations WHERE version = ?').pluck();
  const record = db.prepare<[number, string, string]>(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  );

  let applied = 0;
  for (const m of migrations) {
    // Re-check inside the write lock so two processes opening a fresh file don't both apply it.
    const foreignKeys = db.pragma('foreign_keys', { simple: true }) === 1;
    // A no-op inside a transaction: switched off before it begins.
    if (m.rebuildsReferencedTable && foreignKeys) db.pragma('foreign_keys = OFF');
    try {
      const ran = db
        .transaction((): boolean => {
          if (isApplied.get(m.version) !== undefined) return false;
          db.exec(m.up);
          const broken = m.rebuildsReferencedTable ? db.pragma('foreign_key_check') as unknown[] : [];
          if (broken.length > 0) throw new Error(`migration ${m.version} (${m.name}) broke foreign keys: ${JSON.stringify(broken)}`);
          record.run(m.version, m.name, new Date().toISOString());
          return true;
        })
        .immediate();
      if (ran) applied++;
    } finally {
      if (m.rebuildsReferencedTable && foreignKeys) db.pragma('foreign_keys = ON');
    }
  }
  return applied;
}

/** Highest recorded schema version, or 0 for a fresh database (schema_migrations must exist). */
export function currentSchemaVersion(db: Database.Database): number {
  const v = db.prepare<[], number | null>('SELECT MAX(version) FROM schema_migrations').pluck().get();
  return v ?? 0;
}
