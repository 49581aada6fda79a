import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Event, Command, Counter, MailboxError, minBody, maxBody, MAX_BODY } from "../../board/map/mailbox.ts";
import { typeName } from "../../board/mailbox-codec.ts";
import { ROOT } from "./helpers.ts";

const doc = readFileSync(`${ROOT}docs/mailbox.md`, "utf8");
const codes = (e: object) => Object.values(e).filter((v): v is number => typeof v === "number");

test("docs/mailbox.md documents every message with its code and body size", () => {
  for (const type of [...codes(Event), ...codes(Command)]) {
    const heading = `### ${typeName(type)} (0x${type.toString(16).padStart(2, "0")})`;
    const section = doc.split(heading)[1]?.split("\n### ")[0];
    assert.ok(section, `missing section ${heading}`);
    const min = minBody(type);
    const max = maxBody(type);
    const size = min === max ? (min === 0 ? "Body: empty." : `Body: ${min} bytes.`) : type === Command.Counters ? `Body: 4 + 4 × ${Counter.Count} bytes.` : `Body: ${min} to ${max} bytes`;
    assert.ok(section.includes(size), `${heading} should say "${size}"`);
  }
  assert.ok(doc.includes(`0..${MAX_BODY} (\`MAX_BODY\`)`));
});

test("docs/mailbox.md lists every error code and every counter in order", () => {
  for (const code of codes(MailboxError)) assert.match(doc, new RegExp(`\\| ${code} \\| \`${MailboxError[code]}\` \\|`));
  for (let i = 0; i < Counter.Errors + 1; i++) assert.match(doc, new RegExp(`\\| ${i} \\| \`${Counter[i]}\` \\|`));
  assert.match(doc, new RegExp(`\\| 7–14 \\| \`${Counter[7]}\` … \`${Counter[14]}\` \\|`));
  for (let i = 15; i < Counter.Count; i++) assert.match(doc, new RegExp(`\\| ${i} \\| \`${Counter[i]}\` \\|`));
});

test("docs/registers.md documents every tunnel register at its offset and every counter in order", async () => {
  const { TunnelReg, TunnelCounter, CardReg } = await import("../../board/map/registers.ts");
  const regs = readFileSync(`${ROOT}docs/registers.md`, "utf8");
  for (const [name, offset] of Object.entries(TunnelReg).filter(([, v]) => typeof v === "number") as [string, number][]) {
    if (name === "CountTxFrames") continue; // documented as the Count* block
    assert.match(regs, new RegExp(`\\| 0x${offset.toString(16).padStart(2, "0")} \\| \`${name}\` \\|`), name);
  }
  for (const [name, offset] of Object.entries(CardReg).filter(([, v]) => typeof v === "number") as [string, number][]) {
    assert.match(regs, new RegExp(`\\| 0x${offset.toString(16).padStart(2, "0")} \\| \`${name}\` \\|`), name);
  }
  for (let i = 0; i < TunnelCounter.Count; i++) assert.match(regs, new RegExp(`\\| ${i} \\| \`${TunnelCounter[i]}\` \\|`), TunnelCounter[i]);
  const { SwitchReg } = await import("../../board/map/registers.ts");
  const router = regs.split("## Switch router block")[1] ?? "";
  for (const [name, offset] of Object.entries(SwitchReg).filter(([, v]) => typeof v === "number") as [string, number][]) {
    assert.match(router, new RegExp(`\\| 0x${offset.toString(16).padStart(2, "0")} \\| \`${name}\` \\|`), name);
  }
});
