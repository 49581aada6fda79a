import { buildFirmware, describeBuild, describeImage, BuildError } from "../build/firmware.ts";
import { CliError } from "./args.ts";

export async function runBuild(options: { quiet?: boolean }): Promise<void> {
  if (!options.quiet) process.stdout.write("compiling assembly/ (debug, then release with binaryen -O3)...\n");
  try {
    const report = await buildFirmware();
    process.stdout.write(describeBuild(report) + "\n");
    if (!options.quiet) process.stdout.write(describeImage(report) + "\n");
  } catch (error) {
    if (error instanceof BuildError) throw new CliError(error.message);
    throw error;
  }
}
