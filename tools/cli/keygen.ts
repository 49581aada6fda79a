// `iov keygen OUT`: a new Ed25519 signing key for flash images. OUT gets the private key
// (PKCS#8 PEM, mode 0600), OUT.pub the public key (SPKI PEM) that cards and `iov image
// verify --trust` take. Both are what `openssl pkey` reads.

import { generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { keyIdOf } from "../../board/image.ts";
import { CliError } from "./args.ts";

function write(path: string, text: string, mode: number, force: boolean): void {
  try {
    writeFileSync(path, text, { mode, flag: force ? "w" : "wx" });
    chmodSync(path, mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot write ${path}: ${code === "EEXIST" ? "it exists (pass --force to replace it)" : code ?? (error as Error).message}`);
  }
}

export function runKeygen(out: string, flags: { force?: boolean }): void {
  const pub = `${out}.pub`;
  for (const path of [out, pub]) {
    if (!flags.force && existsSync(path)) throw new CliError(`${path} exists: pass --force to replace it`);
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  write(out, privateKey.export({ format: "pem", type: "pkcs8" }) as string, 0o600, flags.force ?? false);
  write(pub, publicKey.export({ format: "pem", type: "spki" }) as string, 0o644, flags.force ?? false);
  const id = Buffer.from(keyIdOf(publicKey)).toString("hex");
  process.stdout.write(`key ${id}: private key in ${out} (keep it secret), public key in ${pub}\n`);
}
