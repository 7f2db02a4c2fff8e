// Who is calling: the service, or one user. The service's four steps (taskclaim.auth), in order, with
// the same statuses and messages:
//
// 1. No `Authorization: Bearer <token>` -> 401.
// 2. Equal (constant time) to SUPABASE_SERVICE_ROLE_KEY or a value of SUPABASE_SECRET_KEYS -> service.
// 3. Shaped like a JWT -> verified (HS256 with SUPABASE_JWT_SECRET; ES256/RS256 through the project's
//    JWKS), algorithm pinned, `exp` required and enforced. Role service_role/supabase_admin -> service;
//    else `sub`.
// 4. Anything else is a personal access token, looked up by its SHA-256 -> its user; else 403.

import * as jose from "npm:jose@6.2.18";
import { HttpError } from "./http.ts";
import { query, sql } from "./database.ts";
import { TOKEN_CACHE_SECONDS } from "./settings.ts";

/** The service (userId null) or one user. */
export type Caller = { userId: string | null };

const SERVICE: Caller = { userId: null };
const SERVICE_ROLES = new Set(["service_role", "supabase_admin"]);
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_TOKEN_LENGTH = 8192;
const ASYMMETRIC = new Set(["ES256", "RS256"]);
const encoder = new TextEncoder();

function serviceKeys(): string[] {
  const keys = [Deno.env.get("SUPABASE_SERVICE_ROLE_KEY") ?? ""];
  const named = Deno.env.get("SUPABASE_SECRET_KEYS");
  if (named) {
    try {
      const parsed = JSON.parse(named);
      if (parsed && typeof parsed === "object") {
        keys.push(...Object.values(parsed).filter((v): v is string => typeof v === "string"));
      }
    } catch {
      console.error("SUPABASE_SECRET_KEYS must be a JSON object of named keys; ignoring it");
    }
  }
  return keys.filter((key) => key.length > 0);
}

const SERVICE_KEY_DIGESTS = Promise.all(serviceKeys().map(sha256));
const JWT_SECRET = Deno.env.get("SUPABASE_JWT_SECRET") || undefined;
const JWKS = jwks();

function jwks(): jose.JWTVerifyGetKey | undefined {
  const document = Deno.env.get("SUPABASE_JWKS");
  if (document) return jose.createLocalJWKSet(JSON.parse(document));
  const supabaseUrl = Deno.env.get("SUPABASE_URL");
  const url = Deno.env.get("SUPABASE_JWKS_URL") ||
    (supabaseUrl && supabaseUrl.replace(/\/+$/, "") + "/auth/v1/.well-known/jwks.json");
  // An unknown kid refetches the keys at most every 30 s, so made-up kids cannot hammer Auth.
  return url
    ? jose.createRemoteJWKSet(new URL(url), { cooldownDuration: 30_000, timeoutDuration: 5_000 })
    : undefined;
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function bearerToken(authorization: string | null): string {
  if (!authorization) throw new HttpError(401, "missing Authorization header");
  const space = authorization.indexOf(" ");
  const scheme = space < 0 ? authorization : authorization.slice(0, space);
  if (scheme.toLowerCase() !== "bearer") throw new HttpError(401, "Authorization must be a Bearer token");
  const token = space < 0 ? "" : authorization.slice(space + 1).trim();
  if (!token) throw new HttpError(401, "empty Bearer token");
  if (token.length > MAX_TOKEN_LENGTH) throw new HttpError(403, "token not accepted");
  return token;
}

export async function authenticate(authorization: string | null): Promise<Caller> {
  const token = bearerToken(authorization);
  if (await isServiceKey(token)) return SERVICE;
  if (JWT_SHAPE.test(token)) return await fromJwt(token);
  return await fromPersonalToken(token);
}

/** Compared with every key, as SHA-256 digests of equal length, so the time tells neither which key
 * matched nor how much of one did. */
async function isServiceKey(token: string): Promise<boolean> {
  const candidate = await sha256(token);
  let matched = 0;
  for (const key of await SERVICE_KEY_DIGESTS) {
    let difference = 0;
    for (let i = 0; i < key.length; i++) difference |= key[i] ^ candidate[i];
    matched |= difference === 0 ? 1 : 0;
  }
  return matched === 1;
}

async function fromJwt(token: string): Promise<Caller> {
  let header: jose.ProtectedHeaderParameters;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch {
    throw new HttpError(403, "malformed JWT");
  }
  const { alg, kid } = header as { alg?: unknown; kid?: unknown };
  if (typeof alg !== "string" || !(kid === undefined || typeof kid === "string")) {
    throw new HttpError(403, "malformed JWT");
  }
  let key: Uint8Array | jose.JWTVerifyGetKey;
  if (alg === "HS256" && JWT_SECRET) {
    key = encoder.encode(JWT_SECRET);
  } else if (ASYMMETRIC.has(alg) && JWKS) {
    key = JWKS;
  } else {
    throw new HttpError(403, `JWT algorithm '${alg.slice(0, 20)}' not accepted`);
  }
  let payload: jose.JWTPayload;
  try {
    ({ payload } = await jose.jwtVerify(token, key as Uint8Array, {
      algorithms: [alg],
      requiredClaims: ["exp"],
    }));
  } catch (error) {
    if (error instanceof jose.errors.JWTExpired) throw new HttpError(403, "JWT expired");
    if (error instanceof jose.errors.JWKSNoMatchingKey || error instanceof jose.errors.JWKSTimeout) {
      throw new HttpError(403, "JWT signed by an unknown key");
    }
    throw new HttpError(403, "JWT not accepted");
  }
  return callerFromClaims(payload);
}

/** Who verified claims name: the service for a role of service_role or supabase_admin, else the user
 * whose UUID is `sub`. Anything else, of any shape, is a 403. */
export function callerFromClaims(claims: unknown): Caller {
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) {
    throw new HttpError(403, "JWT claims must be an object");
  }
  const { role, sub } = claims as { role?: unknown; sub?: unknown };
  if (role !== undefined && role !== null && typeof role !== "string") {
    throw new HttpError(403, "JWT role must be a string");
  }
  if (typeof role === "string" && SERVICE_ROLES.has(role)) return SERVICE;
  if (typeof sub !== "string") throw new HttpError(403, "JWT has no user (sub)");
  const userId = canonicalUuid(sub);
  if (userId === null) throw new HttpError(403, "JWT sub is not a user id");
  return { userId };
}

/** A UUID in any of the spellings Python's uuid.UUID takes, as 8-4-4-4-12 lower-case hex; else null. */
function canonicalUuid(text: string): string | null {
  const bare = text.trim().replace(/^urn:uuid:/i, "").replace(/^\{(.*)\}$/, "$1").replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(bare)) return null;
  const h = bare.toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const tokenCache = new Map<string, { userId: string; until: number }>();

async function fromPersonalToken(token: string): Promise<Caller> {
  const digest = hex(await sha256(token));
  const now = Date.now();
  const cached = tokenCache.get(digest);
  if (cached && cached.until > now) return { userId: cached.userId };
  const rows = await query(() =>
    sql()`select user_id, expires_at from public.taskclaim_token_user(${digest})`
  );
  if (rows.length === 0) {
    tokenCache.delete(digest);
    throw new HttpError(403, "token not accepted");
  }
  const userId = String(rows[0].user_id);
  let until = now + TOKEN_CACHE_SECONDS * 1000;
  if (rows[0].expires_at) until = Math.min(until, new Date(rows[0].expires_at).getTime());
  if (until > now) {
    if (tokenCache.size > 10_000) tokenCache.clear();
    tokenCache.set(digest, { userId, until });
  }
  return { userId };
}
