// The Redfish service as its users meet it: `iov manage serve` in front of `iov sim --scenario
// handover --manage`, read and driven by the clients of Debian's packages, DMTF's redfishtool and
// OpenStack's sushy (python3-sushy). .ci/run installs both; elsewhere the test is skipped.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { ROOT, iov } from "./helpers.ts";

const PYTHON = "/usr/bin/python3"; // Debian's, which has python3-sushy (another python3 may come first on PATH)
const redfishtool = spawnSync("redfishtool", ["-h"], { encoding: "utf8" });
const sushy = spawnSync(PYTHON, ["-c", "import sushy"], { encoding: "utf8" });
const skip = redfishtool.error ? "redfishtool not on PATH: install it (apt-get install redfishtool)"
  : sushy.status !== 0 ? "python3-sushy not installed for /usr/bin/python3 (apt-get install python3-sushy)" : false;

const children: ChildProcess[] = [];
after(() => children.forEach((c) => c.kill("SIGINT")));

/** Starts `iov ARGS` and resolves with the first match of `ready` in its output, and all it printed. */
function start(args: string[], ready: RegExp): Promise<{ match: RegExpExecArray; output: () => string }> {
  const child = spawn(process.execPath, [`${ROOT}tools/iov.mjs`, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`iov ${args.join(" ")}: not ready after 120 s:\n${output}`)), 120_000);
    const seen = (chunk: Buffer) => {
      output += chunk.toString();
      const match = ready.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ match, output: () => output });
      }
    };
    child.stdout!.on("data", seen);
    child.stderr!.on("data", seen);
    child.once("exit", (code) => reject(new Error(`iov ${args.join(" ")} exited with ${code}:\n${output}`)));
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("redfishtool and sushy read the fabric and move the chassis card between the servers of a simulated installation", { skip, timeout: 300_000 }, async () => {
  const sim = await start(["sim", "--scenario", "handover", "--manage", "0"], /management port: (tcp:\/\/127\.0\.0\.1:\d+)/);
  const serve = await start(["manage", "serve", "--net", sim.match[1], "--installation", "default", "--port", "0", "--poll", "250"], /Redfish service on (http:\/\/127\.0\.0\.1:(\d+))\//);
  const base = serve.match[1];
  const host = `127.0.0.1:${serve.match[2]}`;
  const get = async (path: string) => (await fetch(`${base}${path}`)).json();
  const F = "/redfish/v1/Fabrics/default";
  // Until the servers have enumerated the chassis card's devices and the station has heard every card.
  await until("three cards", async () => ((await get(`${F}/Endpoints`))["Members@odata.count"] === 3 ? true : undefined));
  await until("server1's devices", async () => (/server1 .*graphics 3:0\.0: test picture drawn/.test(sim.output()) ? true : undefined));

  const tool = (...args: string[]) => spawnSync("redfishtool", ["-r", host, "-S", "Never", "-u", "admin", "-p", "admin", ...args], { encoding: "utf8", timeout: 120_000 });
  const root = tool("root");
  assert.equal(root.status, 0, root.stderr);
  assert.equal(JSON.parse(root.stdout).RedfishVersion, "1.20.0");
  const fabric = JSON.parse(tool("raw", "GET", F).stdout);
  assert.equal(fabric.FabricType, "PCIe");
  const zone100 = JSON.parse(tool("raw", "GET", `${F}/Zones/100`).stdout);
  assert.deepEqual(zone100.Links.Endpoints.map((e: { "@odata.id": string }) => e["@odata.id"]), [`${F}/Endpoints/10000001`, `${F}/Endpoints/20000001`]);

  // redfishtool's PATCH: it GETs the zone, PATCHes with its ETag in If-Match, and follows the Task to its end.
  const moved = tool("raw", "PATCH", `${F}/Zones/200`, "-d", JSON.stringify({ Links: { Endpoints: [{ "@odata.id": `${F}/Endpoints/10000002` }, { "@odata.id": `${F}/Endpoints/20000001` }] } }));
  assert.equal(moved.status, 0, moved.stderr);
  assert.deepEqual(JSON.parse(moved.stdout).Links.Endpoints.map((e: { "@odata.id": string }) => e["@odata.id"]), [`${F}/Endpoints/10000002`, `${F}/Endpoints/20000001`]);
  await until("server2's hot-plug insertion", async () => (/server2 .*pciehp: Slot\(1\): Card present/.test(sim.output()) ? true : undefined));

  // sushy: the fabric's endpoints with their roles, and the chassis card moved back through its connector.
  const inserted = () => (sim.output().match(/server1 .*pciehp: Slot\(1\): Card present/g) ?? []).length;
  const before = inserted();
  const script = `
import json, sys, time, sushy
s = sushy.Sushy(${JSON.stringify(base)}, username="admin", password="admin")
fabric = s.get_fabric(${JSON.stringify(F)})
out = {"type": fabric.fabric_type.value, "endpoints": sorted([[e.identity, e.endpoint_protocol.value, [[c.entity_role.value, c.entity_type.value if c.entity_type else None] for c in (e.connected_entities or [])]] for e in fabric.endpoints.get_members()])}
zone = s._conn.get(${JSON.stringify(`${F}/Zones/100`)})
r = s._conn.patch(${JSON.stringify(`${F}/Zones/100`)}, data={"Links": {"Endpoints": [{"@odata.id": ${JSON.stringify(`${F}/Endpoints/10000001`)}}, {"@odata.id": ${JSON.stringify(`${F}/Endpoints/20000001`)}}]}}, etag=zone.headers["ETag"])
out["patch"] = r.status_code
m = s._conn.get(r.headers["Location"])
while m.status_code == 202:
    time.sleep(0.25)
    m = s._conn.get(r.headers["Location"])
out["done"] = [m.status_code, [e["@odata.id"] for e in m.json()["Links"]["Endpoints"]]]
print(json.dumps(out))
`;
  const py = spawnSync(PYTHON, ["-c", script], { encoding: "utf8", timeout: 120_000 });
  assert.equal(py.status, 0, py.stderr);
  const seen = JSON.parse(py.stdout);
  assert.equal(seen.type, "PCIe");
  assert.deepEqual(seen.endpoints, [
    ["10000001", "PCIe", [["Initiator", "RootComplex"]]],
    ["10000002", "PCIe", [["Initiator", "RootComplex"]]],
    ["20000001", "PCIe", []],
  ]);
  // What sushy read is the service's own state.
  const own = await get(`${F}/Endpoints`);
  assert.deepEqual(own.Members.map((m: { "@odata.id": string }) => m["@odata.id"].split("/").pop()), seen.endpoints.map((e: string[]) => e[0]));
  assert.equal(seen.patch, 202);
  assert.deepEqual(seen.done, [200, [`${F}/Endpoints/10000001`, `${F}/Endpoints/20000001`]]);
  await until("server1's hot-plug insertion", async () => (inserted() > before ? true : undefined));
});

test("iov manage serve says in one line why it cannot start: a bad fabric Id, a management network it cannot reach", () => {
  const badId = iov(["manage", "serve", "--net", "tcp://127.0.0.1:1", "--installation", "default", "--fabric", "my fabric"]);
  assert.equal(badId.status, 1);
  assert.match(badId.stderr, /--fabric 'my fabric': an Id is 1 to 64 letters, digits/);
  const unreachable = iov(["manage", "serve", "--net", "tcp://127.0.0.1:1", "--installation", "default"]);
  assert.equal(unreachable.status, 1);
  assert.match(unreachable.stderr, /tcp:\/\/127\.0\.0\.1:1: connection refused/);
  assert.equal(unreachable.stderr.trim().split("\n").length, 1, unreachable.stderr);
});
