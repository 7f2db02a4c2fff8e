// `./dev edge`: every function of supabase/functions at http://HOST:PORT/functions/v1/<name> in one Deno
// process, as `supabase functions serve` would route them, plus GET /health (200 while the database
// answers) for whoever waits for it to start, and GET /metrics with the one gauge the tests wait on
// (taskclaim_long_polls_waiting); the Python service's metrics are its own. Usage: deno run ... _dev/serve.ts [--port P] [--host H]

import { DEV_ROUTES, type Handler } from "../_shared/function.ts";
import { errorResponse, json, RETRY_AFTER_SECONDS } from "../_shared/http.ts";
import { query, sql } from "../_shared/database.ts";
import { waiting } from "../_shared/longpoll.ts";

function option(name: string, fallback: string): string {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && Deno.args[at + 1] ? Deno.args[at + 1] : fallback;
}

const routes = new Map<string, Handler>();
(globalThis as Record<symbol, unknown>)[DEV_ROUTES] = routes;
const functions = new URL("../", import.meta.url);
for await (const entry of Deno.readDir(functions)) {
  if (entry.isDirectory && !entry.name.startsWith("_")) {
    await import(new URL(`${entry.name}/index.ts`, functions).href);
  }
}

async function health(): Promise<Response> {
  try {
    await query(() => sql()`select 1`);
    return json({ status: "ok" });
  } catch (error) {
    console.warn(`health: ${error}`);
    return errorResponse(503, "database unavailable", { "Retry-After": RETRY_AFTER_SECONDS });
  }
}

const port = Number(option("port", "54321"));
const hostname = option("host", "127.0.0.1");
Deno.serve({
  port,
  hostname,
  onListen: () =>
    console.log(
      `edge functions on http://${hostname}:${port}/functions/v1/ (${[...routes.keys()].sort().join(", ")})`,
    ),
}, (request) => {
  const path = new URL(request.url).pathname;
  if (path === "/health" && request.method === "GET") return health();
  if (path === "/metrics" && request.method === "GET") {
    return Promise.resolve(new Response(`taskclaim_long_polls_waiting ${waiting()}\n`));
  }
  const name = path.startsWith("/functions/v1/") ? path.slice("/functions/v1/".length) : "";
  const route = routes.get(name);
  return route ? route(request) : Promise.resolve(errorResponse(404, "Not Found"));
});
