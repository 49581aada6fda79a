// Each simulated card's UART as a local TCP socket: raw bytes both ways, no telnet
// negotiation (like a terminal server in raw mode). One client per card at a time; a
// second one is told the console is busy. What a card sends while nobody is attached is
// dropped, as on an unplugged serial line.

import { createServer, type Server, type Socket } from "node:net";
import type { Card } from "../../board/card.ts";

export interface ConsoleEndpoint {
  card: string;
  host: string;
  port: number;
}

export class ConsoleServers {
  private readonly servers: Server[] = [];

  /**
   * Listens for each card on 127.0.0.1: `basePort` + the card's index, or ports the system
   * chooses when `basePort` is 0. `inject` runs input at the simulation's current time.
   */
  static async open(cards: Card[], basePort: number, inject: (action: () => void) => void): Promise<{ servers: ConsoleServers; endpoints: ConsoleEndpoint[] }> {
    const servers = new ConsoleServers();
    const endpoints: ConsoleEndpoint[] = [];
    for (const [i, card] of cards.entries()) {
      const server = servers.serve(card, inject);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(basePort === 0 ? 0 : basePort + i, "127.0.0.1", () => resolve());
      }).catch((error: NodeJS.ErrnoException) => {
        servers.close();
        throw new Error(`console for ${card.name}: cannot listen on 127.0.0.1:${basePort + i} (${error.code ?? error.message})`);
      });
      const address = server.address();
      endpoints.push({ card: card.name, host: "127.0.0.1", port: typeof address === "object" && address ? address.port : 0 });
    }
    return { servers, endpoints };
  }

  private serve(card: Card, inject: (action: () => void) => void): Server {
    let client: Socket | null = null;
    card.uart.line = (bytes) => client?.write(bytes);
    const server = createServer((socket) => {
      if (client) {
        socket.end(`console of ${card.name} is in use by another client\r\n`);
        return;
      }
      client = socket;
      socket.setNoDelay(true);
      socket.on("data", (chunk: Buffer) => {
        const bytes = new Uint8Array(chunk);
        inject(() => card.uart.receive(bytes));
      });
      socket.on("error", () => socket.destroy());
      socket.on("close", () => {
        if (client === socket) client = null;
      });
    });
    this.servers.push(server);
    return server;
  }

  close(): void {
    for (const server of this.servers) server.close();
  }
}
