// `iov pcap decrypt IN OUT --keylog FILE`: a copy of a capture in which every MACsec frame
// whose key the log holds is the frame in clear, byte for byte as the sending tunnel engine
// built it (tunnel header, body, padding, new FCS), at the same time stamp. Frames without a
// key, or that fail validation (an attacker's), stay as captured. The counts go to stdout.

import { readFileSync } from "node:fs";
import { PcapWriter, readPcap, LINKTYPE_ETHERNET } from "../sim/pcap.ts";
import { Decryptor, parseKeyLog } from "../sim/keylog.ts";
import { CliError } from "./args.ts";

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new CliError(`cannot read the ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

export function runDecrypt(input: string, output: string, flags: { keylog: string }): void {
  let entries;
  try {
    entries = parseKeyLog(read(flags.keylog, "key log").toString("utf8"));
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`${flags.keylog}: ${(error as Error).message}`);
  }
  let capture;
  try {
    capture = readPcap(read(input, "capture"));
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`${input}: ${(error as Error).message}`);
  }
  if (capture.linkType !== LINKTYPE_ETHERNET) throw new CliError(`${input}: link type ${capture.linkType} is not Ethernet`);
  if (capture.fcsLength !== 4) throw new CliError(`${input}: its frames do not end with a 4-byte FCS (as iov sim --pcap writes them)`);
  const decryptor = new Decryptor(entries);
  const out = new PcapWriter(output);
  try {
    for (const record of capture.records) out.write(record.timeNs, decryptor.decrypt(record.frame).frame);
  } finally {
    out.close();
  }
  const c = decryptor.counts;
  process.stdout.write(
    `${output}: ${capture.records.length} frames, ${c.decrypted} decrypted with ${entries.length} key(s) from ${flags.keylog}, ${c.clear} already in clear` +
      `, ${c["no-key"]} without a key, ${c["bad-icv"]} failing validation, ${c["bad-tag"]} with a bad SecTAG\n`,
  );
}
