import { buildFirmware, describeBuild, describeImage, BuildError } from "../build/firmware.ts";
import { formatSizes } from "../build/sizes.ts";
import { SIZE_BUDGET } from "../build/checks.ts";
import { CliError } from "./args.ts";

export async function runBuild(options: { quiet?: boolean; sizes?: boolean }): Promise<void> {
  if (!options.quiet) process.stdout.write("compiling assembly/ (debug, then release with binaryen -O3, shrink level 2)...\n");
  try {
    const report = await buildFirmware({ sizes: options.sizes });
    process.stdout.write(describeBuild(report) + "\n");
    if (!options.quiet) process.stdout.write(describeImage(report) + "\n");
    if (report.sizes) process.stdout.write("\n" + formatSizes(report.sizes, SIZE_BUDGET));
  } catch (error) {
    if (error instanceof BuildError) throw new CliError(error.message);
    throw error;
  }
}
