// iov: build, simulate, run the fault matrix, replay and decode traces, sign and check flash
// images, benchmark. Each command's module is loaded only when it runs, so `iov sim` does not
// pay for the compiler.

import { Command, Option } from "commander";
import { readFileSync } from "node:fs";
import { ENGINE_KINDS, EngineFailure } from "../engines/index.ts";
import { CliError, duration, engine, integer, softcoreMhz } from "./args.ts";
import { SOFTCORE_DEFAULT_MHZ } from "../../board/softcore.ts";
import { netArg, serialArg } from "./manage-args.ts";
import { boardId, buildId, collect, version as imageVersion } from "./image-args.ts";
import { DEFAULT_BAUD } from "../../board/uart.ts";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));

const engineOption = () =>
  new Option("--engine <kind>", `firmware engine: ${ENGINE_KINDS.join(", ")}`).argParser(engine).default("node");
const wasm3Option = () => new Option("--wasm3 <path>", "wasm3 binary for --engine wasm3 (default: $IOV_WASM3)");
const firmwareOption = () => new Option("--firmware <path>", "firmware.wasm to run (default: build/firmware.wasm)");

export function program(): Command {
  const iov = new Command("iov")
    .description("IOV card: firmware build, simulator, traces and tools")
    .version(version)
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`iov: ${text.replace(/^error: /, "")}`) });

  iov.command("build")
    .description("compile firmware.wasm (release and debug) and check it fits the card")
    .option("--quiet", "print only the size line")
    .option("--sizes", "also print where the release's bytes go: each section, then each module's functions, texts and data, largest first")
    .action(async (options) => (await import("./build.ts")).runBuild(options));

  iov.command("sim")
    .description("run a simulation and print its timeline")
    .option("--scenario <name|file>", "a built-in scenario (see --list), or a scenario file: a value ending in .json or containing a / (docs/scenarios.md)", "default")
    .option("--list", "list the built-in scenarios and stop")
    .addOption(new Option("--seed <n>", "random seed").argParser(integer(0, 2 ** 32 - 1)).default(1))
    .addOption(new Option("--duration <time>", "simulated time, e.g. 3s or 250ms (default: the scenario's)").argParser(duration))
    .addOption(engineOption())
    .addOption(wasm3Option())
    .addOption(firmwareOption())
    .addOption(new Option("--softcore-mhz <mhz>", "the cards' soft-core clock: each batch keeps it busy for the instructions it executes (docs/softcore.md); 0 is the zero-time model").argParser(softcoreMhz).default(SOFTCORE_DEFAULT_MHZ))
    .option("--record <dir>", "write each card's raw mailbox traffic: DIR/CARD.in, CARD.out, CARD.log")
    .option("--summary <file>", "write a JSON summary of the run")
    .option("--pcap <file>", "capture every frame on the cables to a pcap file (one per cable, named FILE.CABLE.pcap, when there are several)")
    .option("--keylog <file>", "write each MACsec key the cards put in use to FILE, to decrypt a --pcap capture with `iov pcap decrypt` (a debugging aid: a card never shows its keys)")
    .option("--screenshot <file>", "save the remote screen (the first graphics adapter) as a PNG when the run ends")
    .option("--lspci <file>", "write the server's PCI hierarchy in lspci -xxx format when the run ends (decode it with lspci -F FILE -vvv)")
    .addOption(new Option("--console [port]", "serve each card's console (UART) on a local TCP port, PORT + the card's index (default: ports the system picks), and run in real time until Ctrl-C or --duration").argParser(integer(0, 65535)))
    .addOption(new Option("--manage [port]", "serve the scenario's management port on a local TCP port (default: one the system picks) for `iov manage`, and run in real time until Ctrl-C or --duration").argParser(integer(0, 65535)))
    .option("--flash-dir <dir>", "keep each card's flash in DIR/CARD.flash, so that updates outlive the run (created with the factory image when missing)")
    .option("--fault <family>", "run one cell of the fault matrix: the family's scenario and faults for --seed, and its verdict (`iov faults --list`, docs/faults.md)")
    .option("--verbose", "also show every mailbox message")
    .option("--quiet", "no timeline, only the closing summary")
    .action(async (options) => (await import("./sim.ts")).runSim(options));

  iov.command("faults")
    .description("run every fault family over many seeds on the default scenario and print one row per family; exit status 1 if a promise was broken (docs/faults.md)")
    .addOption(new Option("--family <name>", "run this family only (repeatable, or a comma list; default: all, see --list)").argParser(collect))
    .addOption(new Option("--seeds <n>", "seeds per family, 1..10000 (default 50)").argParser(integer(1, 10_000)))
    .addOption(new Option("--jobs <n>", "worker threads, 1..256 (default: one per CPU); the results do not depend on it").argParser(integer(1, 256)))
    .option("--json <file>", "also write the results, every cell with its replay command, as JSON")
    .option("--list", "list the families, what each injects and what it allows, and stop")
    .action(async (options) => (await import("./faults.ts")).runFaults(options));

  const trace = iov.command("trace").description("recorded mailbox traces");
  trace.command("replay")
    .description("feed a recorded fd 0 stream (NAME.in) to an engine and compare its fd 1 output with NAME.out")
    .argument("<input>", "the events the firmware read (NAME.in)")
    .option("--expect <file>", "the commands it must write (default: NAME.out beside the input)")
    .addOption(engineOption())
    .addOption(wasm3Option())
    .addOption(firmwareOption())
    .option("--write <file>", "also save the output produced")
    .action(async (input, options) => (await import("./trace.ts")).runReplay(input, options));
  trace.command("profile")
    .description("where the firmware spends its WebAssembly instructions over a recorded fd 0 stream: by what each batch carried, and by function (docs/softcore.md)")
    .argument("<input>", "the events the firmware read (NAME.in)")
    .addOption(firmwareOption())
    .option("--names <file>", "the same firmware built with function names (default: build/firmware.names.wasm from `iov build --sizes`, when it matches)")
    .addOption(new Option("--top <n>", "functions to list").argParser(integer(1, 100_000)).default(25))
    .action(async (input, options) => (await import("./trace.ts")).runProfile(input, options));
  trace.command("decode")
    .description("print a trace as one readable line per message")
    .argument("<file>", "NAME.in (events) or NAME.out (commands)")
    .addOption(new Option("--as <direction>", "how to read the file (default: from its extension)").choices(["events", "commands"]))
    .action(async (file, options) => (await import("./trace.ts")).runDecode(file, options));

  const pcap = iov.command("pcap").description("captures of the cables (iov sim --pcap)");
  pcap.command("decrypt")
    .description("write a copy of a capture with every MACsec frame whose key is in the key log replaced by the frame in clear")
    .argument("<input>", "the capture (classic pcap, as iov sim --pcap writes)")
    .argument("<output>", "the capture to write")
    .requiredOption("--keylog <file>", "the key log of the run (iov sim --keylog)")
    .action(async (input, output, options) => (await import("./pcap.ts")).runDecrypt(input, output, options));

  iov.command("keygen")
    .description("make an Ed25519 key for signing flash images: OUT (private, mode 0600) and OUT.pub (public)")
    .argument("<out>", "file for the private key; the public key goes to OUT.pub")
    .option("--force", "replace existing files")
    .action(async (out, options) => (await import("./keygen.ts")).runKeygen(out, options));

  const image = iov.command("image").description("flash images: build, inspect and verify (docs/image-format.md)");
  image.command("build")
    .description("make a flash image of a firmware.wasm, signed with --key, --dev-key or --unsigned")
    .argument("<firmware>", "the firmware.wasm to put in the image")
    .requiredOption("-o, --output <file>", "the image to write")
    .option("--key <file>", "sign with this private key (PEM, from `iov keygen`)")
    .option("--dev-key", "sign with the public development key (simulated cards only)")
    .option("--unsigned", "leave the image unsigned (a card refuses to boot it)")
    .addOption(new Option("--board-id <n>", "the board it is for (default: this card's, 0x10f00a01)").argParser(boardId))
    .addOption(new Option("--version <x.y.z>", "firmware version (default: the one the firmware reports in HELLO)").argParser(imageVersion))
    .addOption(new Option("--build-id <hex>", "16-byte build ID (default: the first 16 bytes of the payload's SHA-256)").argParser(buildId))
    .action(async (firmware, options, command) => (await import("./image.ts")).runImageBuild(firmware, options, command));
  image.command("inspect")
    .description("print an image's header and check its structure and payload hash (not its signature)")
    .argument("<image>", "the image file")
    .option("--json", "print the fields as JSON")
    .action(async (file, options) => (await import("./image.ts")).runImageInspect(file, options));
  image.command("verify")
    .description("check an image as a card's boot ROM does: structure, signature by a trusted key, board")
    .argument("<image>", "the image file")
    .addOption(new Option("--trust <file>", "a trusted public key (PEM, KEY.pub from `iov keygen`); repeatable").argParser(collect))
    .option("--dev-key", "also trust the development key")
    .addOption(new Option("--board-id <n>", "refuse an image built for another board").argParser(boardId))
    .action(async (file, options, command) => (await import("./image.ts")).runImageVerify(file, options, command));

  const portOption = () => new Option("--port <port>", "the card's console: tcp://HOST:PORT (e.g. `iov sim --console`) or a serial device such as /dev/ttyUSB0").makeOptionMandatory();
  const baudOption = () => new Option("--baud <n>", "serial line speed (8N1); ignored for tcp://").argParser(integer(1, 4_000_000)).default(DEFAULT_BAUD);
  iov.command("console")
    .description("join the terminal to a card's console line (Ctrl-] quits); with stdin from a pipe, send it and print the answers")
    .addOption(portOption())
    .addOption(baudOption())
    .addOption(new Option("--linger <ms>", "with piped stdin: how long to keep printing after it ends").argParser(integer(0, 600_000)).default(500))
    .action(async (options) => (await import("./console.ts")).runConsole(options));
  iov.command("flash")
    .description("write a firmware image to a card over its console line (XMODEM) and wait until the card confirms it")
    .argument("<image>", "the flash image (from `iov image build` or `iov build`: build/firmware.img)")
    .addOption(portOption())
    .addOption(baudOption())
    .addOption(new Option("--timeout <s>", "seconds for the whole update, up to the new firmware's confirmation").argParser(integer(1, 3600)).default(120))
    .option("--quiet", "print only the final report, not the card's lines and the progress bar")
    .action(async (file, options) => (await import("./flash.ts")).runFlash(file, options));

  const manage = iov.command("manage").description("the management station: find cards, read their status, move them between groups (docs/management.md)");
  const stationOptions = (command: Command, timeout: { ms: number; what: string }) => command
    .addOption(new Option("--net <url>", "how to reach the management network: tcp://HOST:PORT, a QEMU-style frame stream (e.g. `iov sim --manage`)").argParser(netArg).makeOptionMandatory())
    .addOption(new Option("--installation <name>", "a simulated installation: its admin key (as `iov sim` gives its cards)").conflicts("keyFile"))
    .option("--key-file <file>", "the installation's admin key: a file with 64 hex digits")
    .addOption(new Option("--vlan <n>", "the management VLAN").argParser(integer(1, 4094)).default(4000))
    .addOption(new Option("--timeout <ms>", timeout.what).argParser(integer(1, 600_000)).default(timeout.ms));
  const manageOptions = (command: Command, timeout: { ms: number; what: string }, json = true) =>
    json ? stationOptions(command, timeout).option("--json", "print one JSON document on stdout") : stationOptions(command, timeout);
  manageOptions(manage.command("discover")
    .description("ask every card on the management VLAN who and how it is, and print a table"), { ms: 1000, what: "how long to collect answers, in milliseconds" })
    .action(async (options, command) => (await import("./manage.ts")).runDiscover(options, command));
  manageOptions(manage.command("status")
    .description("one card's report: firmware, group, slots, link ports and peers, counters")
    .argument("<serial>", "the card's serial, in hex as the cards log it: 0x20000001 or 20000001", serialArg), { ms: 200, what: "how long each try waits for the answer, in milliseconds (3 tries, then the card is discovered again and 3 more)" })
    .action(async (serial, options, command) => (await import("./manage.ts")).runStatus(serial, options, command));
  manageOptions(manage.command("assign")
    .description("move a card to another group (SetGroup, kept in its flash), then wait until it reports the group and, for a chassis card, an active link")
    .argument("<serial>", "the card's serial, in hex as the cards log it: 0x20000001 or 20000001", serialArg)
    .addOption(new Option("--group <n>", "the new group, 1..4094 (not the management VLAN)").argParser(integer(1, 4094)).makeOptionMandatory())
    .addOption(new Option("--wait <ms>", "how long to wait for the card to report the new group and, for a chassis card, an active link again (0: not for the link)").argParser(integer(0, 3_600_000)).default(30_000)),
  { ms: 200, what: "how long each try waits for the answer, in milliseconds (3 tries, then the card is discovered again and 3 more)" })
    .action(async (serial, options, command) => (await import("./manage.ts")).runAssign(serial, options, command));

  manageOptions(manage.command("serve")
    .description("the management station as a DMTF Redfish service on a local HTTP port, until Ctrl-C (docs/redfish.md)")
    .addOption(new Option("--port <n>", "the HTTP port on 127.0.0.1 (0: one the system picks)").argParser(integer(0, 65535)).default(8000))
    .option("--fabric <id>", "the Fabric's Id (default: the --installation name, else IOV)")
    .addOption(new Option("--poll <ms>", "how often the station asks every card for its report").argParser(integer(100, 600_000)).default(1000)),
  { ms: 250, what: "how long each poll collects the cards' answers, in milliseconds" }, false)
    .action(async (options, command) => (await import("./manage-serve.ts")).runServe(options, command));

  iov.command("bench")
    .description("run the benchmarks; write bench/results.json, bench/figures/*.svg and (all parts) bench/report.md, and print a table")
    .option("--quick", "shorter runs (under a minute)")
    .option("--only <part>", "run one part: firmware, tunnel, pcie, macsec, paths, congestion, link, hotplug, manage, softcore, fleet or faults")
    .addOption(wasm3Option())
    .action(async (options) => (await import("./bench.ts")).runBench(options));

  return iov;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program().parseAsync(argv, { from: "user" });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    const e = error as { code?: string; exitCode?: number; message: string };
    if (typeof e.code === "string" && e.code.startsWith("commander.")) {
      // Help and version exit 0; usage errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof CliError || error instanceof EngineFailure) {
      process.stderr.write(`iov: ${e.message}\n`);
      return 1;
    }
    throw error;
  }
}

// Output piped into `head` and the like: stop quietly when the reader goes away.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  process.exit(0);
});

process.exitCode = await main(process.argv.slice(2));
