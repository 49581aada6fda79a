// Big-endian fields of CONTROL frames (network order, like the tunnel header).

export function load16be(at: usize): u32 {
  return bswap<u16>(load<u16>(at)) as u32;
}

export function load32be(at: usize): u32 {
  return bswap<u32>(load<u32>(at));
}

export function store16be(at: usize, value: u32): void {
  store<u16>(at, bswap<u16>(value as u16));
}

export function store32be(at: usize, value: u32): void {
  store<u32>(at, bswap<u32>(value));
}

/** True when the 6-byte addresses at `a` and `b` are equal. */
export function sameMac(a: usize, b: usize): bool {
  return load<u32>(a) == load<u32>(b) && load<u16>(a + 4) == load<u16>(b + 4);
}
