// AssemblyScript transform: the firmware's text literals become UTF-8 in one table.
//
// AssemblyScript stores every string literal as a UTF-16 object with its own header and data
// segment: about 50 bytes of module for a 20-character log message. The firmware only ever
// copies its texts byte by byte to the log or the UART, so each string literal in a firmware
// source (assembly/) is replaced by the address of its entry in one table, TEXT_TABLE
// (assembly/text.ts): a length byte, then the UTF-8 bytes. The literal's type becomes `Text`
// (a usize), which assembly/text.ts reads. Identical texts share one entry. Import paths and
// decorator arguments are left alone; a text of more than 255 bytes fails the build.
//
// Listed in asconfig.json (the release and debug builds) and as-pect.asconfig.json (the
// firmware specs), so every build of the firmware sees the same table.

import { Transform } from "assemblyscript/transform";
import { LiteralKind, Node, NodeKind, Token } from "assemblyscript";

const FIRMWARE = "assembly/";
const TABLE_FILE = "assembly/text.ts";
const TABLE_NAME = "TEXT_TABLE";
const MAX_TEXT = 255;

/** The table of the last firmware build in this process, for `iov build --sizes`. */
export let lastTable = null;

export default class TextTransform extends Transform {
  afterParse(parser) {
    const sources = parser.sources.filter((s) => s.normalizedPath.startsWith(FIRMWARE));
    const table = sources.find((s) => s.normalizedPath === TABLE_FILE);
    if (!table) return; // a build that does not include the firmware
    const entries = new Map(); // text -> { offset, module: the first to use it, bytes }
    const bytes = [];
    const offsetOf = (text, range) => {
      let entry = entries.get(text);
      if (entry === undefined) {
        const utf8 = new TextEncoder().encode(text);
        if (utf8.length > MAX_TEXT) {
          throw new Error(`${range.source.normalizedPath}: a text of ${utf8.length} bytes; the firmware's texts hold at most ${MAX_TEXT}`);
        }
        // The log and the console copy texts as they are (assembly/log.ts, console/uart.ts): printable ASCII only.
        const bad = utf8.findIndex((b) => b < 0x20 || b > 0x7e);
        if (bad >= 0) {
          throw new Error(`${range.source.normalizedPath}: the text ${JSON.stringify(text)} has a byte 0x${utf8[bad].toString(16)} at ${bad}; the firmware's texts are printable ASCII`);
        }
        entry = { offset: bytes.length, module: range.source.normalizedPath, bytes: 1 + utf8.length };
        entries.set(text, entry);
        bytes.push(utf8.length, ...utf8);
      }
      return entry.offset;
    };
    const replace = (literal) => {
      const range = literal.range;
      const offset = globalThis.i64_new(offsetOf(literal.value, range), 0);
      return Node.createBinaryExpression(Token.Plus, Node.createIdentifierExpression(TABLE_NAME, range), Node.createIntegerLiteralExpression(offset, range), range);
    };
    for (const source of sources) {
      if (source !== table) rewrite(source, replace);
    }
    fillTable(table, bytes);
    lastTable = { bytes: Uint8Array.from(bytes), entries: [...entries].map(([text, e]) => ({ text, module: e.module, bytes: e.bytes })) };
  }
}

function isNode(value) {
  return value instanceof Node;
}

/** Replaces, below `node`, every string literal in an expression by `replace(literal)`. */
function rewrite(node, replace) {
  if (node.kind === NodeKind.Decorator) return;
  if (node.kind === NodeKind.Literal && node.literalKind === LiteralKind.Template) {
    throw new Error(`${node.range.source.normalizedPath}: a template literal; firmware texts are plain literals`);
  }
  for (const key of Object.keys(node)) {
    if (key === "range" || ((node.kind === NodeKind.Import || node.kind === NodeKind.Export) && key === "path")) continue;
    const value = node[key];
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        if (!isNode(value[i])) continue;
        if (isString(value[i])) value[i] = replace(value[i]);
        else rewrite(value[i], replace);
      }
    } else if (isNode(value)) {
      if (isString(value)) node[key] = replace(value);
      else rewrite(value, replace);
    }
  }
}

function isString(node) {
  return node.kind === NodeKind.Literal && node.literalKind === LiteralKind.String;
}

/** Puts the table's bytes into `memory.data<u8>([...])`, the initialiser of TEXT_TABLE. */
function fillTable(table, bytes) {
  let data = null;
  for (const statement of table.statements) {
    if (statement.kind !== NodeKind.Variable) continue;
    for (const declaration of statement.declarations) {
      if (declaration.name.text === TABLE_NAME) data = declaration.initializer;
    }
  }
  const list = data?.kind === NodeKind.Call ? data.args[0] : null;
  if (!list || list.kind !== NodeKind.Literal || list.literalKind !== LiteralKind.Array) {
    throw new Error(`${TABLE_FILE}: ${TABLE_NAME} must be initialised with memory.data<u8>([])`);
  }
  list.elementExpressions = bytes.map((b) => Node.createIntegerLiteralExpression(globalThis.i64_new(b, 0), list.range));
}
