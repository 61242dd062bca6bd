import type Database from 'better-sqlite3';
import type { NewVm, StopMethod, VmRecord, VmState } from './types.ts';
import { parseDeviceModel, type DeviceModel } from '../model/device-model.ts';

interface VmRow {
  id: string;
  name: string;
  template_id: string;
  state: VmState;
  state_reason: string | null;
  pid: number | null;
  mac: string;
  storage_dir: string;
  ssh_keys: string;
  user_data: string | null;
  ssh_port: number | null;
  guest_address: string | null;
  stop_method: StopMethod | null;
  device_model: string | null;
  resume_from: string | null;
  origin_snapshot_id: string | null;
  qemu_uid: number | null;
  qemu_gid: number | null;
  created_at: string;
  updated_at: string;
}

export interface SetStateOptions {
  reason?: string | null;
  /** Only written when the key is present, so `{ pid: null }` clears it and `{}` keeps it. */
  pid?: number | null;
}

interface UpdateParams {
  id: string;
  state: VmState;
  reason: string | null;
  set_pid: 0 | 1;
  pid: number | null;
  now: string;
}

type CasParams = UpdateParams & { from: string };

function toRecord(r: VmRow): VmRecord {
  return {
    id: r.id,
    name: r.name,
    templateId: r.template_id,
    state: r.state,
    stateReason: r.state_reason,
    pid: r.pid,
    mac: r.mac,
    storageDir: r.storage_dir,
    sshKeys: JSON.parse(r.ssh_keys) as string[],
    userData: r.user_data,
    sshPort: r.ssh_port,
    guestAddress: r.guest_address,
    stopMethod: r.stop_method,
    deviceModel: parseDeviceModel(r.device_model),
    resumeFrom: r.resume_from,
    originSnapshotId: r.origin_snapshot_id,
    qemuIdentity: r.qemu_uid === null || r.qemu_gid === null ? null : { uid: r.qemu_uid, gid: r.qemu_gid },
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function updateParams(id: string, state: VmState, opts: SetStateOptions | undefined): UpdateParams {
  const setPid = opts !== undefined && Object.hasOwn(opts, 'pid');
  return {
    id,
    state,
    reason: opts?.reason ?? null,
    set_pid: setPid ? 1 : 0,
    pid: setPid ? (opts?.pid ?? null) : null,
    now: new Date().toISOString(),
  };
}

const SET_CLAUSE = `state = @state, state_reason = @reason,
  pid = CASE WHEN @set_pid THEN @pid ELSE pid END, updated_at = @now`;

export class VmRepo {
  private readonly insertStmt: Database.Statement<[Omit<VmRow, 'ssh_port' | 'guest_address' | 'stop_method' | 'qemu_uid' | 'qemu_gid'>], VmRow>;
  private readonly setRuntimeStmt: Database.Statement<[number | null, string | null, string]>;
  private readonly setStopMethodStmt: Database.Statement<[StopMethod, string]>;
  private readonly setDeviceModelStmt: Database.Statement<[string, string]>;
  private readonly setResumeFromStmt: Database.Statement<[string | null, string]>;
  private readonly setQemuIdentityStmt: Database.Statement<[number | null, number | null, string]>;
  private readonly qemuIdsStmt: Database.Statement<[], { qemu_uid: number; qemu_gid: number }>;
  private readonly clonesStmt: Database.Statement<[string], VmRow>;
  private readonly getStmt: Database.Statement<[string], VmRow>;
  private readonly getByNameStmt: Database.Statement<[string], VmRow>;
  private readonly listStmt: Database.Statement<[], VmRow>;
  private readonly listByStateStmt: Database.Statement<[string], VmRow>;
  private readonly setStateStmt: Database.Statement<[UpdateParams], VmRow>;
  private readonly casStmt: Database.Statement<[CasParams], VmRow>;
  private readonly deleteStmt: Database.Statement<[string]>;
  private readonly countStmt: Database.Statement<[], number>;
  private readonly macInUseStmt: Database.Statement<[string], number>;
  private readonly restoreStmt: Database.Statement<[string, string | null, number | null, string, string], VmRow>;

  constructor(db: Database.Database) {
    this.restoreStmt = db.prepare<[string, string | null, number | null, string, string], VmRow>(
      'UPDATE vms SET state = ?, state_reason = ?, pid = ?, updated_at = ? WHERE id = ? RETURNING *',
    );
    this.setRuntimeStmt = db.prepare<[number | null, string | null, string]>('UPDATE vms SET ssh_port = ?, guest_address = ? WHERE id = ?');
    this.setStopMethodStmt = db.prepare<[StopMethod, string]>('UPDATE vms SET stop_method = ? WHERE id = ?');
    this.setDeviceModelStmt = db.prepare<[string, string]>('UPDATE vms SET device_model = ? WHERE id = ?');
    this.setResumeFromStmt = db.prepare<[string | null, string]>('UPDATE vms SET resume_from = ? WHERE id = ?');
    this.setQemuIdentityStmt = db.prepare<[number | null, number | null, string]>('UPDATE vms SET qemu_uid = ?, qemu_gid = ? WHERE id = ?');
    this.qemuIdsStmt = db.prepare<[], { qemu_uid: number; qemu_gid: number }>('SELECT qemu_uid, qemu_gid FROM vms WHERE qemu_uid IS NOT NULL');
    this.clonesStmt = db.prepare<[string], VmRow>('SELECT * FROM vms WHERE origin_snapshot_id = ? ORDER BY created_at, id');
    this.insertStmt = db.prepare<Omit<VmRow, 'ssh_port' | 'guest_address' | 'stop_method' | 'qemu_uid' | 'qemu_gid'>, VmRow>(
      `INSERT INTO vms (id, name, template_id, state, state_reason, pid, mac, storage_dir, ssh_keys, user_data, device_model, resume_from, origin_snapshot_id, created_at, updated_at)
       VALUES (@id, @name, @template_id, @state, @state_reason, @pid, @mac, @storage_dir, @ssh_keys, @user_data, @device_model, @resume_from, @origin_snapshot_id, @created_at, @updated_at)
       RETURNING *`,
    );
    this.getStmt = db.prepare<[string], VmRow>('SELECT * FROM vms WHERE id = ?');
    this.getByNameStmt = db.prepare<[string], VmRow>('SELECT * FROM vms WHERE name = ?');
    this.listStmt = db.prepare<[], VmRow>('SELECT * FROM vms ORDER BY created_at, id');
    // A JSON array parameter lets one prepared statement serve any number of states.
    this.listByStateStmt = db.prepare<[string], VmRow>(
      'SELECT * FROM vms WHERE state IN (SELECT value FROM json_each(?)) ORDER BY created_at, id',
    );
    this.setStateStmt = db.prepare<UpdateParams, VmRow>(`UPDATE vms SET ${SET_CLAUSE} WHERE id = @id RETURNING *`);
    // Check and write in one statement so concurrent writers cannot interleave.
    this.casStmt = db.prepare<CasParams, VmRow>(
      `UPDATE vms SET ${SET_CLAUSE}
       WHERE id = @id AND state IN (SELECT value FROM json_each(@from)) RETURNING *`,
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM vms WHERE id = ?');
    this.countStmt = db.prepare<[], number>('SELECT COUNT(*) FROM vms').pluck();
    this.macInUseStmt = db.prepare<[string], number>('SELECT 1 FROM vms WHERE mac = ?').pluck();
  }

  /** What a running VM has on the host and in its guest: its forwarded SSH port and the address its guest reported. */
  setRuntime(id: string, r: { sshPort: number | null; guestAddress: string | null }): void {
    this.setRuntimeStmt.run(r.sshPort, r.guestAddress, id);
  }

  /** Its hardware, as its next QEMU gets it (a disk attached or detached, or first recorded at a start). */
  setDeviceModel(id: string, model: DeviceModel): void {
    this.setDeviceModelStmt.run(JSON.stringify(model), id);
  }

  /** The snapshot its next start resumes, or none: its starts boot. */
  setResumeFrom(id: string, snapshotId: string | null): void {
    this.setResumeFromStmt.run(snapshotId, id);
  }

  /** The uid and gid its QEMU runs as (vman as root); set once, at its first start (null: a first start refused). */
  setQemuIdentity(id: string, who: { uid: number; gid: number } | null): void {
    this.setQemuIdentityStmt.run(who?.uid ?? null, who?.gid ?? null, id);
  }

  /** Every uid and gid a VM holds: none is given to another VM while it exists. */
  qemuIdsInUse(): Set<number> {
    const used = new Set<number>();
    for (const r of this.qemuIdsStmt.all()) used.add(r.qemu_uid).add(r.qemu_gid);
    return used;
  }

  /** The VMs cloned from this snapshot (their disks are overlays over its images). */
  listClonesOf(snapshotId: string): VmRecord[] {
    return this.clonesStmt.all(snapshotId).map(toRecord);
  }

  setStopMethod(id: string, method: StopMethod): void {
    this.setStopMethodStmt.run(method, id);
  }

  macInUse(mac: string): boolean {
    return this.macInUseStmt.get(mac) !== undefined;
  }

  insert(v: NewVm): VmRecord {
    const now = new Date().toISOString();
    const row = this.insertStmt.get({
      id: v.id,
      name: v.name,
      template_id: v.templateId,
      state: v.state,
      state_reason: v.stateReason,
      pid: v.pid,
      mac: v.mac,
      storage_dir: v.storageDir,
      ssh_keys: JSON.stringify(v.sshKeys ?? []),
      user_data: v.userData ?? null,
      device_model: v.deviceModel ? JSON.stringify(v.deviceModel) : null,
      resume_from: v.resumeFrom ?? null,
      origin_snapshot_id: v.originSnapshotId ?? null,
      created_at: now,
      updated_at: now,
    });
    if (row === undefined) throw new Error(`insert of vm ${v.id} returned no row`);
    return toRecord(row);
  }

  get(id: string): VmRecord | undefined {
    const row = this.getStmt.get(id);
    return row && toRecord(row);
  }

  getByName(name: string): VmRecord | undefined {
    const row = this.getByNameStmt.get(name);
    return row && toRecord(row);
  }

  list(): VmRecord[] {
    return this.listStmt.all().map(toRecord);
  }

  listByState(...states: VmState[]): VmRecord[] {
    if (states.length === 0) return [];
    return this.listByStateStmt.all(JSON.stringify(states)).map(toRecord);
  }

  /** Unconditional transition; state_reason is reset to null unless given. Throws if the VM is missing. */
  setState(id: string, state: VmState, opts?: SetStateOptions): VmRecord {
    const row = this.setStateStmt.get(updateParams(id, state, opts));
    if (row === undefined) throw new Error(`vm ${id} not found`);
    return toRecord(row);
  }

  /** Transition only if the current state is one of `from`; undefined if not (or if the VM is missing). */
  compareAndSetState(id: string, from: VmState[], to: VmState, opts?: SetStateOptions): VmRecord | undefined {
    if (from.length === 0) return undefined;
    const row = this.casStmt.get({ ...updateParams(id, to, opts), from: JSON.stringify(from) });
    return row && toRecord(row);
  }

  /** Puts a row back exactly as it was read (state, reason, pid, updated_at): undoing a refused transition. */
  restore(vm: VmRecord): VmRecord {
    const row = this.restoreStmt.get(vm.state, vm.stateReason, vm.pid, vm.updatedAt, vm.id);
    if (!row) throw new Error(`vm ${vm.id} not found`);
    return toRecord(row);
  }

  /**
   * Deletes the VM and (by cascade) its address allocation. Throws SqliteError
   * 'FOREIGN KEY constraint failed' while a disk is attached (RESTRICT reports
   * code SQLITE_CONSTRAINT_TRIGGER, not _FOREIGNKEY).
   */
  delete(id: string): boolean {
    return this.deleteStmt.run(id).changes > 0;
  }

  count(): number {
    return this.countStmt.get() ?? 0;
  }
}
