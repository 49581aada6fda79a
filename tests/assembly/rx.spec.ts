import * as rx from "../../assembly/abi/rx";
import { Event, MailboxError, MAX_BODY, SyncBody } from "../../board/map/mailbox";

let offset: u32 = 0;

function put(bytes: u8[]): void {
  const at = rx.writePointer();
  for (let i = 0; i < bytes.length; i++) store<u8>(at + i, bytes[i]);
  rx.commit(bytes.length);
}

function header(length: i32, type: i32, flags: i32 = 0): u8[] {
  return [(length & 0xff) as u8, (length >> 8) as u8, type as u8, flags as u8];
}

function sync(seq: u8): u8[] {
  return header(SyncBody.Size, Event.Sync).concat([seq, 0, 0, 0]);
}

describe("rx framing", () => {
  beforeEach(() => {
    rx.reset();
    offset = 0;
  });

  it("frames several messages delivered in one read", () => {
    put(sync(1).concat(sync(2)));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(0);
    expect(rx.msgType).toBe(Event.Sync);
    expect(load<u8>(rx.msgBody)).toBe(1);
    expect(rx.msgOffset).toBe(0);
    expect(rx.next()).toBe(true);
    expect(load<u8>(rx.msgBody)).toBe(2);
    expect(rx.msgOffset).toBe(8);
    expect(rx.next()).toBe(false);
    expect(rx.pending()).toBe(0);
  });

  it("waits for a message split across reads, one byte at a time", () => {
    const bytes = sync(7);
    for (let i = 0; i < bytes.length - 1; i++) {
      rx.freeSpace();
      put([bytes[i]]);
      expect(rx.next()).toBe(false);
      expect(rx.pending()).toBe(i + 1);
    }
    put([bytes[bytes.length - 1]]);
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(0);
    expect(load<u8>(rx.msgBody)).toBe(7);
  });

  it("keeps stream offsets across buffer compaction", () => {
    put(sync(1).concat(sync(2).slice(0, 3)));
    expect(rx.next()).toBe(true);
    expect(rx.next()).toBe(false);
    rx.freeSpace();
    put(sync(2).slice(3));
    expect(rx.next()).toBe(true);
    expect(rx.msgOffset).toBe(8);
    expect(load<u8>(rx.msgBody)).toBe(2);
  });

  it("reports an unknown type and skips its body", () => {
    put(header(2, 0x7e).concat([9, 9]).concat(sync(3)));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(MailboxError.UnknownType);
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(0);
    expect(load<u8>(rx.msgBody)).toBe(3);
  });

  it("treats a command type on the event stream as unknown", () => {
    put(header(4, 0x82).concat([0, 0, 0, 0]));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(MailboxError.UnknownType);
  });

  it("reports a body length the type does not allow", () => {
    put(header(3, Event.Sync).concat([1, 2, 3]).concat(sync(4)));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(MailboxError.BadLength);
    expect(rx.next()).toBe(true);
    expect(load<u8>(rx.msgBody)).toBe(4);
  });

  it("reports non-zero header flags", () => {
    put(header(SyncBody.Size, Event.Sync, 0x80).concat([1, 0, 0, 0]));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(MailboxError.Reserved);
  });

  it("skips an oversize body even when it spans several reads", () => {
    const length = MAX_BODY + 100;
    put(header(length, Event.Entropy));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(MailboxError.Oversize);
    expect(rx.msgLength).toBe(length);
    let left = length;
    while (left > 0) {
      const chunk = min(left, 700);
      rx.freeSpace();
      const filler = new Array<u8>(chunk);
      put(filler);
      expect(rx.next()).toBe(false);
      left -= chunk;
    }
    put(sync(5));
    expect(rx.next()).toBe(true);
    expect(rx.msgError).toBe(0);
    expect(rx.msgOffset).toBe((4 + length) as u32);
    expect(load<u8>(rx.msgBody)).toBe(5);
  });

  it("counts a partial header as pending input", () => {
    put([4, 0]);
    expect(rx.next()).toBe(false);
    expect(rx.pending()).toBe(2);
  });
});
