// Long-poll claims, as the service does them: claim now; when nothing was claimable, wait for a task of
// the caller's scope to become ready (a NOTIFY on taskclaim_ready, whose payload is the owner's id) and
// claim again, until the wait is up or the client has gone. Waiters also retry every 5 s on their own,
// so a notification lost while LISTEN was down (or a URL through a transaction-mode pooler, where LISTEN
// does not work) delays a claim by at most that long. The LISTEN starts with this isolate's first wait.

import { listenReady } from "./database.ts";

const FALLBACK_MS = 5_000;
const SERVICE_SCOPE = "";
const waiters = new Map<string, Set<() => void>>();
let listening = false;
let waitingNow = 0;

/** Long polls waiting for a task now (`./dev edge` shows it at /metrics, for the tests). */
export function waiting(): number {
  return waitingNow;
}

function wake(scope: string): void {
  for (const key of new Set([SERVICE_SCOPE, scope])) {
    const set = waiters.get(key);
    waiters.delete(key);
    set?.forEach((resolve) => resolve());
  }
}

function wakeAll(): void {
  const all = [...waiters.values()];
  waiters.clear();
  all.forEach((set) => set.forEach((resolve) => resolve()));
}

/** A promise that the next ready task of ``scope`` (a user's id, or null for the service) resolves.
 * Take it before claiming, so that a task arriving in between is not missed. */
function nextReady(scope: string | null): { ready: Promise<void>; cancel: () => void } {
  if (!listening) {
    listening = true;
    listenReady((payload) => wake(payload.trim().toLowerCase()), wakeAll);
  }
  const key = scope ?? SERVICE_SCOPE;
  let resolve!: () => void;
  const ready = new Promise<void>((r) => (resolve = r));
  let set = waiters.get(key);
  if (!set) waiters.set(key, set = new Set());
  set.add(resolve);
  return { ready, cancel: () => waiters.get(key)?.delete(resolve) };
}

/** ``claim()`` once; with ``waitSeconds``, again whenever a task of the scope becomes ready, until
 * something is claimed, the time is up or ``signal`` says the client has gone. Tasks claimed for a
 * client that has gone are given back with ``giveBack``. */
export async function longPoll<T>(
  scope: string | null,
  waitSeconds: number,
  signal: AbortSignal,
  claim: () => Promise<T[]>,
  giveBack: (claimed: T[]) => Promise<void>,
): Promise<T[]> {
  const deadline = Date.now() + waitSeconds * 1000;
  while (true) {
    const woken = waitSeconds > 0 ? nextReady(scope) : undefined;
    let claimed: T[];
    try {
      claimed = await claim();
    } catch (error) {
      woken?.cancel();
      throw error;
    }
    if (claimed.length && signal.aborted) {
      await giveBack(claimed);
      return [];
    }
    const remaining = deadline - Date.now();
    if (claimed.length || woken === undefined || remaining <= 0) {
      woken?.cancel();
      return claimed;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    waitingNow++;
    await Promise.race([
      woken.ready,
      new Promise<void>((r) => (timer = setTimeout(r, Math.min(remaining, FALLBACK_MS)))),
      new Promise<void>((r) => {
        onAbort = () => r();
        signal.addEventListener("abort", onAbort, { once: true });
      }),
    ]);
    waitingNow--;
    clearTimeout(timer);
    woken.cancel();
    if (onAbort) signal.removeEventListener("abort", onAbort);
    if (signal.aborted) return [];
  }
}
