// The database, the Supabase way: SUPABASE_DB_URL (Supabase sets it in every function), else
// DATABASE_URL, through postgres.js with prepared statements off, so it also works through Supavisor's or
// PgBouncer's transaction mode. Parameters are always bound, never spliced into the SQL.
//
// SQLSTATEs of class TC (raised by the SQL functions) and the data errors a caller can cause become
// 4xx HttpErrors with PostgreSQL's message; a database that cannot be reached becomes a 503.

import postgres from "npm:postgres@3.4.9";
import { HttpError, RETRY_AFTER_SECONDS } from "./http.ts";
import { setting } from "./settings.ts";

const url = Deno.env.get("SUPABASE_DB_URL") || Deno.env.get("DATABASE_URL");

/** ``url`` as postgres.js takes it. A libpq URL with a Unix socket and no host
 * (``postgresql://user@/db?host=/run/dir``, as the embedded PostgreSQL gives) becomes the socket's path. */
function target(url: string): { url: string; path?: string } {
  const parsed = new URL(url.replace(/^(postgres(?:ql)?:\/\/(?:[^@/]*@)?)(?=[/?]|$)/, "$1localhost"));
  const socketDir = parsed.searchParams.get("host");
  if (!socketDir?.startsWith("/")) return { url: parsed.href };
  parsed.searchParams.delete("host");
  return { url: parsed.href, path: `${socketDir}/.s.PGSQL.${parsed.port || "5432"}` };
}

function connect(max: number) {
  if (!url) throw new Error("set SUPABASE_DB_URL (or DATABASE_URL) to the database's URL");
  const { url: href, path } = target(url);
  return postgres(href, {
    ...(path ? { path } : {}),
    prepare: false,
    max,
    idle_timeout: 20,
    connect_timeout: setting("TASKCLAIM_POOL_TIMEOUT", 5),
    connection: { application_name: "taskclaim-edge" },
    onnotice: () => {},
  });
}

let pool: ReturnType<typeof connect> | undefined;

/** This isolate's connections, opened on first use. */
export function sql() {
  return pool ??= connect(setting("TASKCLAIM_POOL_MAX", 4));
}

// What each SQLSTATE a caller's request can cause means (the service's taskclaim.exceptions table).
const REFUSALS: Record<string, number> = {
  TC400: 400,
  TC403: 403,
  TC404: 404,
  TC409: 409,
  "23503": 400, // foreign key violation: a project or dependency that does not exist
  "42P01": 400, // unknown task table
};
// Connection exceptions, shutdowns and "too many connections": retry later.
const UNAVAILABLE = /^(08|57P|53)/;
const NETWORK = /^(E[A-Z]+|CONNECT_TIMEOUT|CONNECTION_\w+)$/;

/** The status a refusal's SQLSTATE means, for an item a batch function answered with an error. */
export function errorStatus(code: string): number {
  return REFUSALS[code] ?? 400;
}

/** ``run()``, with the database's errors turned into the HTTP answers they mean. */
export async function query<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw databaseError(error);
  }
}

function databaseError(error: unknown): unknown {
  if (error instanceof postgres.PostgresError) {
    const status = REFUSALS[error.code] ?? (error.code.startsWith("22") ? 400 : undefined);
    if (status !== undefined) return new HttpError(status, error.message);
    if (UNAVAILABLE.test(error.code)) return unavailable(error.message);
    return error; // a bug: the function answers 500
  }
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string" && NETWORK.test(code)) return unavailable(String(error));
  return error;
}

function unavailable(why: string): HttpError {
  console.warn(`database unavailable: ${why}`);
  return new HttpError(503, "database unavailable", { "Retry-After": RETRY_AFTER_SECONDS });
}

/** Call ``onReady(payload)`` for each NOTIFY on ``taskclaim_ready`` (the owner's id), and
 * ``onListening()`` each time the LISTEN (re)starts. postgres.js keeps one connection for it and
 * reconnects by itself. */
export function listenReady(onReady: (payload: string) => void, onListening: () => void): void {
  sql().listen("taskclaim_ready", onReady, onListening).catch((error) => {
    console.warn(`LISTEN failed (${error}); long polls retry on their own`);
  });
}
