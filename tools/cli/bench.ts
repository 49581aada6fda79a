import { runBenchmarks, PARTS } from "../../bench/run.ts";
import { checkWasm3, wasm3Path } from "../engines/index.ts";
import { CliError } from "./args.ts";

export async function runBench(flags: { quick?: boolean; wasm3?: string; only?: string }): Promise<void> {
  if (flags.only !== undefined && !PARTS.some((p) => p.name === flags.only)) {
    throw new CliError(`--only: no benchmark part named '${flags.only}'; the parts are ${PARTS.map((p) => p.name).join(", ")}`);
  }
  const wasm3 = wasm3Path(flags.wasm3);
  await runBenchmarks({ quick: !!flags.quick, wasm3: wasm3 === undefined ? undefined : checkWasm3(wasm3), only: flags.only });
}
