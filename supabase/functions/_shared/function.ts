// What every function's index.ts calls: serveFunction("<name>"). The wrapper answers the CORS preflight
// before any auth check, takes POST only, authenticates, reads and checks the body, runs the route and
// turns every failure into a JSON error with its status (a bug included: 500, logged).
//
// On Supabase each function is its own worker and serveFunction starts it with Deno.serve. Under
// `./dev edge` one process serves them all: the router (_dev/serve.ts) sets up a table first, and each
// index.ts it imports registers its handler there instead.

import { authenticate } from "./auth.ts";
import { decodeBody, type FunctionName, readBody } from "./body.ts";
import { CORS, errorResponse, HttpError } from "./http.ts";
import { ROUTES } from "./routes.ts";

export type Handler = (request: Request) => Promise<Response>;
export const DEV_ROUTES = Symbol.for("taskclaim.edge.routes");

export function handler(name: FunctionName): Handler {
  const route = ROUTES[name];
  return async (request) => {
    if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
    if (request.method !== "POST") {
      return errorResponse(405, "Method Not Allowed", { Allow: "POST, OPTIONS" });
    }
    try {
      const caller = await authenticate(request.headers.get("authorization"));
      const body = decodeBody(name, await readBody(request, name));
      return await route(caller, body, request);
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error.status, error.message, error.headers);
      console.error(`unhandled error in ${name}:`, error);
      return errorResponse(500, "internal error");
    }
  };
}

export function serveFunction(name: FunctionName): void {
  const routes = (globalThis as Record<symbol, unknown>)[DEV_ROUTES] as Map<string, Handler> | undefined;
  if (routes) routes.set(name, handler(name));
  else Deno.serve(handler(name));
}
