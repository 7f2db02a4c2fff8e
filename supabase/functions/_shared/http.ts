// The HTTP conventions of DESIGN.md, shared by every function: CORS on every answer, errors as
// {"error": "..."} with their status, 204 without a body, 503 with Retry-After.

export const CORS: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
  "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
};
export const RETRY_AFTER_SECONDS = "2";

/** A refusal with its status: what the caller sent (4xx), or a database that cannot be reached (503). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function jsonText(text: string, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(text, {
    status,
    headers: { ...CORS, ...headers, "Content-Type": "application/json" },
  });
}

export function json(value: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return jsonText(JSON.stringify(value), status, headers);
}

export function errorResponse(status: number, message: string, headers: Record<string, string> = {}) {
  return json({ error: message }, status, headers);
}

export function noContent(): Response {
  return new Response(null, { status: 204, headers: CORS });
}
