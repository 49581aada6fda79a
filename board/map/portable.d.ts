// Lets the TypeScript compiler check the files under board/map/ that the AssemblyScript
// compiler also reads: AssemblyScript's integer types are plain numbers on the host.
declare type i32 = number;
declare type u32 = number;
declare type u16 = number;
declare type u8 = number;
declare type bool = boolean;
/** AssemblyScript's fixed-length array, whose constant literals live in static memory. */
declare type StaticArray<T> = readonly T[];
