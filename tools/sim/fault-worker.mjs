// A worker thread of the fault matrix (tools/sim/faults.ts, runMatrix): the TypeScript loader
// first, as tools/iov.mjs does, then the loop that runs the cells it is given.
import { register } from "tsx/esm/api";

register();
const { serveCells } = await import("./faults.ts");
serveCells();
