// The only WASI functions the firmware imports. wasm3's minimal WASI provides them,
// and on the card they are bound to the fabric's mailbox FIFOs.

export const FD_EVENTS: u32 = 0;
export const FD_COMMANDS: u32 = 1;
export const FD_LOG: u32 = 2;

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_read")
declare function fd_read(fd: u32, iovs: usize, iovsLen: usize, nread: usize): u16;

// @ts-ignore: decorator
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, iovsLen: usize, nwritten: usize): u16;

// One iovec (pointer, length) and one result word, reused by every call.
const iov = memory.data(12);

/** Reads up to `len` bytes into `ptr`; returns the count, 0 at end of input, -1 on error. */
export function readEvents(ptr: usize, len: usize): i32 {
  store<u32>(iov, ptr as u32);
  store<u32>(iov, len as u32, 4);
  store<u32>(iov, 0, 8);
  const errno = fd_read(FD_EVENTS, iov, 1, iov + 8);
  if (errno != 0) return -1;
  return load<u32>(iov, 8) as i32;
}

/** Writes all `len` bytes at `ptr` to `fd`, retrying short writes; false if the runtime refuses. */
export function writeAll(fd: u32, ptr: usize, len: usize): bool {
  while (len > 0) {
    store<u32>(iov, ptr as u32);
    store<u32>(iov, len as u32, 4);
    store<u32>(iov, 0, 8);
    const errno = fd_write(fd, iov, 1, iov + 8);
    const written = load<u32>(iov, 8) as usize;
    if (errno != 0 || written == 0) return false;
    ptr += written;
    len -= written;
  }
  return true;
}
