// What QEMU itself says, read by the suite's own readers: the process table
// (proc-reader.ts) and QMP over the VM's second monitor (qmp-reader.ts), so the
// suite never competes with vman's own connection on qmp.sock.
export { qemuOfVm as qemuProcessOf } from './proc-reader.ts';
export { qemuRunState as qmpRunState } from './qmp-reader.ts';
