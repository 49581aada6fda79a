#!/usr/bin/env node
// The `iov` command. The tools are TypeScript, loaded through tsx.
import { register } from "tsx/esm/api";

register();
await import("./cli/main.ts");
