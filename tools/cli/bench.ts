import { runBenchmarks } from "../../bench/run.ts";
import { wasm3Path } from "../engines/index.ts";

export async function runBench(flags: { quick?: boolean; wasm3?: string }): Promise<void> {
  await runBenchmarks({ quick: !!flags.quick, wasm3: wasm3Path(flags.wasm3) });
}
