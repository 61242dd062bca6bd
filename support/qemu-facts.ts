// What QEMU itself says, read by the suite's own readers: the process table
// (proc-reader.ts) and QMP over the VM's second monitor (qmp-reader.ts), so the
// suite never competes with vman's own connection on qmp.sock.
import { QmpClient } from '../src/operator/qmp-client.ts';

export { qemuOfVm as qemuProcessOf } from './proc-reader.ts';
export { qemuRunState as qmpRunState } from './qmp-reader.ts';

/** TEMPORARY: still vman's client for validation_steps.ts until it moves to qmp-reader.ts (issue 12, in progress). */
export async function withAuxQmp<T>(dir: string, fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(`${dir}/qmp-aux.sock`, { timeoutMs: 5_000 });
  try {
    return await fn(qmp);
  } finally {
    await qmp.close();
  }
}
