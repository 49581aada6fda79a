// Big-endian fields of CONTROL frames (network order, like the tunnel header), byte by byte:
// WebAssembly has no byte swap, and AssemblyScript's bswap is a call on every field.

export function load16be(at: usize): u32 {
  return ((load<u8>(at) as u32) << 8) | (load<u8>(at, 1) as u32);
}

export function load32be(at: usize): u32 {
  return ((load<u8>(at) as u32) << 24) | ((load<u8>(at, 1) as u32) << 16) | ((load<u8>(at, 2) as u32) << 8) | (load<u8>(at, 3) as u32);
}

export function store16be(at: usize, value: u32): void {
  store<u8>(at, (value >> 8) as u8);
  store<u8>(at, value as u8, 1);
}

export function store32be(at: usize, value: u32): void {
  store<u8>(at, (value >> 24) as u8);
  store<u8>(at, (value >> 16) as u8, 1);
  store<u8>(at, (value >> 8) as u8, 2);
  store<u8>(at, value as u8, 3);
}

/** True when the 6-byte addresses at `a` and `b` are equal. */
export function sameMac(a: usize, b: usize): bool {
  return load<u32>(a) == load<u32>(b) && load<u16>(a + 4) == load<u16>(b + 4);
}
