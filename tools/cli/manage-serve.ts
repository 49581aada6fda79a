// `iov manage serve`: the management station as a Redfish service (docs/redfish.md). It polls the
// cards over the --net transport and answers HTTP on 127.0.0.1 until Ctrl-C; a transport that
// closes ends it with an error.

import type { Command } from "commander";
import { serve } from "@hono/node-server";
import { wallClock } from "../manage/client.ts";
import { Installation } from "../redfish/installation.ts";
import { RedfishService } from "../redfish/service.ts";
import { CliError } from "./args.ts";
import { connectionLost, openClient, TRY_TIMEOUT_MS, type ManageFlags } from "./manage.ts";

export interface ServeFlags extends ManageFlags {
  port: number;
  fabric?: string;
  poll: number;
}

export async function runServe(flags: ServeFlags, command: Command): Promise<void> {
  const fabric = flags.fabric ?? flags.installation ?? "IOV";
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(fabric)) throw new CliError(`--fabric '${fabric}': an Id is 1 to 64 letters, digits, '_', '.' or '-'`);
  const { client, transport } = await openClient(flags, command, TRY_TIMEOUT_MS);
  const installation = new Installation(client, fabric, wallClock, { intervalMs: flags.poll, answerMs: flags.timeout });
  const service = new RedfishService({ installation });
  installation.start();
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: service.app.fetch, port: flags.port, hostname: "127.0.0.1" }, (info) => {
      process.stdout.write(`Redfish service on http://127.0.0.1:${info.port}/redfish/v1/ (fabric ${fabric}, cards on ${flags.net}); Ctrl-C ends it\n`);
      resolve(s);
    });
    s.once("error", (error: NodeJS.ErrnoException) => reject(new CliError(`cannot listen on 127.0.0.1:${flags.port}: ${error.code ?? error.message}`)));
  });
  await new Promise<void>((resolve, reject) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    transport.onClose((error) => reject(connectionLost(transport, error)));
  }).finally(() => {
    installation.stop();
    client.close();
    server.close();
  });
}
