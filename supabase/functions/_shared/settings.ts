// The service's settings that the functions honour, by the same environment names as taskclaim serve.

import { HttpError } from "./http.ts";
import { LIMITS } from "./body.ts";

/** A number from the environment, or ``fallback`` when it is unset or not a number >= 0. */
export function setting(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  const value = raw ? Number(raw) : NaN;
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

const MAX_LEASE = Math.min(
  setting("TASKCLAIM_MAX_LEASE_SECONDS", LIMITS.MAX_LEASE_SECONDS),
  LIMITS.MAX_LEASE_SECONDS,
);
const DEFAULT_LEASE = setting("TASKCLAIM_LEASE_SECONDS", LIMITS.DEFAULT_LEASE_SECONDS);
const MAX_WAIT = Math.min(
  setting("TASKCLAIM_MAX_WAIT_SECONDS", LIMITS.MAX_WAIT_SECONDS),
  LIMITS.MAX_WAIT_SECONDS,
);

/** The lease of a claim: the requested one within this deployment's maximum, else the default. */
export function leaseSeconds(requested: unknown): number {
  checkLease(requested);
  return requested === undefined ? Math.min(DEFAULT_LEASE, MAX_LEASE) : requested as number;
}

export function checkLease(requested: unknown): void {
  if (typeof requested === "number" && requested > MAX_LEASE) {
    throw new HttpError(400, `lease_seconds: Expected \`int\` <= ${MAX_LEASE}`);
  }
}

export function waitSeconds(requested: unknown): number {
  if (typeof requested === "number" && requested > MAX_WAIT) {
    throw new HttpError(400, `wait_seconds: Expected \`float\` <= ${MAX_WAIT}`);
  }
  return (requested as number | undefined) ?? 0;
}

/** How long a personal access token's look-up is cached (a revoked token works this long). */
export const TOKEN_CACHE_SECONDS = setting("TASKCLAIM_TOKEN_CACHE_SECONDS", 10);

/** Whether service claims take users in turn (TASKCLAIM_CLAIM_ORDER=round-robin) instead of the oldest task. */
export function roundRobin(): boolean {
  const order = Deno.env.get("TASKCLAIM_CLAIM_ORDER") || "oldest";
  if (order !== "oldest" && order !== "round-robin") {
    throw new HttpError(500, "TASKCLAIM_CLAIM_ORDER must be one of oldest, round-robin");
  }
  return order === "round-robin";
}

/** TASKCLAIM_MAX_IN_PROGRESS_PER_USER: at most this many tasks of one user in progress (null: no cap). */
export function maxInProgress(): number | null {
  const raw = Deno.env.get("TASKCLAIM_MAX_IN_PROGRESS_PER_USER") || "";
  if (raw === "") return null;
  const cap = Number(raw);
  if (!/^[0-9]+$/.test(raw) || cap < 1 || cap > 1_000_000) {
    throw new HttpError(500, "TASKCLAIM_MAX_IN_PROGRESS_PER_USER must be a whole number from 1");
  }
  return cap;
}
