// What QEMU itself says: the process table and QMP over the VM's second
// monitor (qmp-aux.sock), so the suite never competes with vman's own
// connection on qmp.sock.
import { listVmanQemuProcesses, type ProcessInfo } from '../src/operator/proc.ts';
import { QmpClient } from '../src/operator/qmp-client.ts';
import { vmPaths } from '../src/operator/qemu-command.ts';

/** The live QEMU process of a VM, found by its -name vman-<id> and its folder. */
export async function qemuProcessOf(vmId: string, dir: string): Promise<ProcessInfo | undefined> {
  const procs = await listVmanQemuProcesses();
  return procs.find((p) => p.vmId === vmId && p.argv.some((a) => a.includes(`${dir}/`)));
}

export async function withAuxQmp<T>(dir: string, fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(vmPaths(dir).qmpAux, { timeoutMs: 5_000 });
  try {
    return await fn(qmp);
  } finally {
    await qmp.close();
  }
}

export function qmpRunState(dir: string): Promise<string> {
  return withAuxQmp(dir, async (qmp) => (await qmp.execute<{ status: string }>('query-status')).status);
}
