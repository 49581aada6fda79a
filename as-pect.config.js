// Unit tests of the firmware modules (tests/assembly/*.spec.ts), compiled by as-pect.
// The firmware's WASI imports are bound to a sink: specs inspect the command buffer
// through assembly/abi/tx.ts, and log lines (fd 2) are checked by the host tests.
export default {
  entries: ["tests/assembly/**/*.spec.ts"],
  include: [],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    const view = () => new DataView(memory.buffer);
    const wasi = {
      fd_read(_fd, _iovs, _count, nread) {
        view().setUint32(nread, 0, true);
        return 0;
      },
      fd_write(_fd, iovs, count, nwritten) {
        let total = 0;
        for (let i = 0; i < count; i++) total += view().getUint32(iovs + 8 * i + 4, true);
        view().setUint32(nwritten, total, true);
        return 0;
      },
    };
    return instantiate(binary, createImports({ env: { memory }, wasi_snapshot_preview1: wasi }));
  },
  outputBinary: false,
};
