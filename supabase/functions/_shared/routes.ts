// One handler per function: the caller (authenticated) and the body (checked) in, one call of the same
// SQL function the Python service calls, the answer out. Rows come back from PostgreSQL as JSON text
// (row_to_json), so timestamps and numbers read exactly as the service writes them.

import type { Caller } from "./auth.ts";
import type { Body, FunctionName } from "./body.ts";
import { LIMITS } from "./body.ts";
import { errorStatus, query, sql } from "./database.ts";
import { HttpError, json, jsonText, noContent } from "./http.ts";
import { longPoll } from "./longpoll.ts";
import { checkLease, leaseSeconds, maxInProgress, roundRobin, waitSeconds } from "./settings.ts";

export type Route = (caller: Caller, body: Body, request: Request) => Promise<Response>;
type Claimed = { task_id: string; worker_id: string; attempt: number; json: string };

/** A JSON value as a bound text parameter (cast to jsonb in the SQL); null stays NULL. */
function jsonParam(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

function types(body: Body): string | null {
  const requested = body.task_types as string[] | undefined;
  return requested === undefined ? null : JSON.stringify([...new Set(requested)].sort());
}

/** The round-robin turn of this isolate: the user its last round-robin claim served. */
let lastUserServed: string | null = null;

/** Whether a claim goes through claimBatch's fair forms: a user's under the cap, or a service claim of
 * any type in turn (round-robin, or any cap). A service claim_id retry keeps the oldest-first claim. */
function fairClaim(caller: Caller, taskTypes: string | null, claimId: string | null): boolean {
  if (caller.userId !== null) return maxInProgress() !== null;
  return taskTypes === null && claimId === null && (roundRobin() || maxInProgress() !== null);
}

async function claimBatch(
  caller: Caller,
  workerId: string,
  count: number,
  lease: number,
  taskTypes: string | null,
  claimId: string | null = null,
): Promise<Claimed[]> {
  const cap = maxInProgress();
  if (caller.userId !== null && cap !== null) {
    return await claimCapped(caller.userId, workerId, count, lease, taskTypes, claimId, cap);
  }
  if (fairClaim(caller, taskTypes, claimId)) return await claimRoundRobin(workerId, count, lease, cap);
  const rows = await query(() =>
    sql()`
      select c.task_id, c.worker_id, c.attempt, row_to_json(c)::text as json
        from (select task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at, ordinal
                from public.taskclaim_claim_batch(
                       array_fill(${workerId}::text, array[${count}::integer]), ${caller.userId}::uuid,
                       ${lease}::integer,
                       case when ${taskTypes}::text is not null
                            then array(select jsonb_array_elements_text(${taskTypes}::text::jsonb)) end)) c
       order by c.ordinal`
  );
  return rows.map((row) => ({ ...row, json: withoutKeys(row.json, "ordinal") })) as Claimed[];
}

async function claimCapped(
  userId: string,
  workerId: string,
  count: number,
  lease: number,
  taskTypes: string | null,
  claimId: string | null,
  cap: number,
): Promise<Claimed[]> {
  const rows = await query(() =>
    sql()`
      select c.task_id, c.worker_id, c.attempt, row_to_json(c)::text as json
        from (select task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at, ordinal
                from public.taskclaim_claim_user_capped(
                       array_fill(${workerId}::text, array[${count}::integer]), ${userId}::uuid,
                       ${lease}::integer,
                       case when ${taskTypes}::text is not null
                            then array(select jsonb_array_elements_text(${taskTypes}::text::jsonb)) end,
                       ${claimId}::uuid, ${cap}::integer)) c
       order by c.ordinal`
  );
  return rows.map((row) => ({ ...row, json: withoutKeys(row.json, "ordinal") })) as Claimed[];
}

async function claimRoundRobin(
  workerId: string,
  count: number,
  lease: number,
  cap: number | null,
): Promise<Claimed[]> {
  const rows = await query(() =>
    sql()`
      select c.task_id, c.worker_id, c.attempt, c.user_id, row_to_json(c)::text as json
        from (select task_id, params, task_type, project_id, worker_id, attempt, lease_expires_at, ordinal,
                     user_id
                from public.taskclaim_claim_round_robin(
                       array_fill(${workerId}::text, array[${count}::integer]), ${lastUserServed}::uuid,
                       ${lease}::integer, ${cap}::integer)) c
       order by c.ordinal`
  );
  if (rows.length) lastUserServed = rows[rows.length - 1].user_id as string;
  return rows.map(({ user_id: _, ...row }) => ({
    ...row,
    json: withoutKeys(row.json as string, "ordinal", "user_id"),
  })) as Claimed[];
}

function withoutKeys(text: string, ...keys: string[]): string {
  const task = JSON.parse(text);
  for (const key of keys) delete task[key];
  return JSON.stringify(task);
}

async function giveBack(caller: Caller, claimed: Claimed[]): Promise<void> {
  for (const task of claimed) {
    await query(() =>
      sql()`select public.taskclaim_release(${task.task_id}::uuid, ${task.worker_id}, ${task.attempt}::integer,
                                            ${caller.userId}::uuid)`
    ).catch(() => {}); // taken back already (its lease, an operator)
  }
  if (claimed.length) console.info(`released ${claimed.length} task(s) claimed for a client that had gone`);
}

const claimNextTask: Route = async (caller, body, request) => {
  const workerId = (body.worker_id as string | undefined) ?? crypto.randomUUID();
  const lease = leaseSeconds(body.lease_seconds);
  const claimId = (body.claim_id as string | undefined) ?? null;
  const taskTypes = types(body);
  if (claimId !== null && taskTypes !== null) {
    throw new HttpError(400, "claim_id cannot be combined with task_types");
  }
  const wait = waitSeconds(body.wait_seconds);
  const claim = async (): Promise<Claimed[]> => {
    if (taskTypes !== null || fairClaim(caller, taskTypes, claimId)) {
      return await claimBatch(caller, workerId, 1, lease, taskTypes, claimId);
    }
    const rows = await query(() =>
      sql()`
        select c.task_id, c.worker_id, c.attempt, row_to_json(c)::text as json
          from public.taskclaim_claim(${workerId}, ${caller.userId}::uuid, ${lease}::integer,
                                      ${claimId}::uuid) c`
    );
    return rows as unknown as Claimed[];
  };
  const claimed = await longPoll(caller.userId, wait, request.signal, claim, (c) => giveBack(caller, c));
  return claimed.length ? jsonText(claimed[0].json) : noContent();
};

/** With `complete`, the worker's finished tasks ride on its claim: completed alongside it (another
 * connection), answered in `completed`, and the answer is always a 200. */
const claimTasks: Route = async (caller, body, request) => {
  const workerId = (body.worker_id as string | undefined) ?? crypto.randomUUID();
  const lease = leaseSeconds(body.lease_seconds);
  const count = (body.max_tasks as number | undefined) ?? 1;
  const taskTypes = types(body);
  const wait = waitSeconds(body.wait_seconds);
  const claim = () =>
    longPoll(
      caller.userId,
      wait,
      request.signal,
      () => claimBatch(caller, workerId, count, lease, taskTypes),
      (c) => giveBack(caller, c),
    );
  const carried = body.complete as Body[] | undefined;
  if (carried === undefined) {
    const claimed = await claim();
    return claimed.length ? jsonText(`{"tasks":[${claimed.map((c) => c.json).join(",")}]}`) : noContent();
  }
  const [completed, claimed] = await Promise.all([completeItems(caller, carried), claim()]);
  const tasks = claimed.map((c) => c.json).join(",");
  return jsonText(`{"tasks":[${tasks}],"completed":${JSON.stringify(completed)}}`);
};

const heartbeat: Route = async (caller, body) => {
  checkLease(body.lease_seconds);
  const [row] = await query(() =>
    sql()`
      select json_build_object('task_id', ${body.task_id as string}::uuid, 'lease_expires_at',
               public.taskclaim_heartbeat(${body.task_id as string}::uuid, ${body.worker_id as string},
                                          ${(body.attempt ?? null) as number | null}::integer,
                                          ${(body.lease_seconds ?? null) as number | null}::integer,
                                          ${caller.userId}::uuid))::text as json`
  );
  return jsonText(row.json);
};

const completeTask: Route = async (caller, body) => {
  const [row] = await query(() =>
    sql()`
      select row_to_json(c)::text as json
        from public.taskclaim_complete(${body.task_id as string}::uuid, ${body.worker_id as string},
                                       ${(body.attempt ?? null) as number | null}::integer,
                                       ${jsonParam(body.result)}::text::jsonb,
                                       ${(body.output_location ?? null) as string | null},
                                       ${caller.userId}::uuid) c`
  );
  return jsonText(row.json);
};

type Completed = {
  ordinal: number;
  task_id: string;
  status: string | null;
  generation_processed_at: string | null;
  error_code: string | null;
  error: string | null;
};

/** Many completions, each answered on its own, in order. One statement per round: an id given twice goes
 * in the next round, so the second is answered after the first, as the service's coalescer does. */
const completeTasks: Route = async (caller, body) => {
  return json({ results: await completeItems(caller, body.tasks as Body[]) });
};

/** The items in rounds of distinct task ids (a repeated id goes in the next round), with their places. */
function distinctRounds(items: Body[]): { item: Body; index: number }[][] {
  const rounds = [];
  let pending = items.map((item, index) => ({ item, index }));
  while (pending.length) {
    const seen = new Set<string>();
    const round = pending.filter(({ item }) =>
      !seen.has(item.task_id as string) && !!seen.add(item.task_id as string)
    );
    pending = pending.filter((entry) => !round.includes(entry));
    rounds.push(round);
  }
  return rounds;
}

async function completeItems(caller: Caller, items: Body[]): Promise<Record<string, unknown>[]> {
  const answers: Record<string, unknown>[] = new Array(items.length);
  for (const round of distinctRounds(items)) {
    const payload = JSON.stringify(round.map(({ item }) => item));
    const [row] = await query(() =>
      sql()`
        select coalesce(json_agg(b order by b.ordinal), '[]')::text as json
          from (select array_agg((e->>'task_id')::uuid order by n) as ids,
                       array_agg(e->>'worker_id' order by n) as workers,
                       array_agg((e->>'attempt')::integer order by n) as attempts,
                       array_agg(nullif(e->'result', 'null'::jsonb) order by n) as results,
                       array_agg(e->>'output_location' order by n) as locations
                  from jsonb_array_elements(${payload}::text::jsonb) with ordinality as x(e, n)) a,
               public.taskclaim_complete_batch(a.ids, a.workers, a.attempts, a.results, a.locations,
                                               ${caller.userId}::uuid) b`
    );
    for (const done of JSON.parse(row.json) as Completed[]) {
      const { index } = round[done.ordinal - 1];
      answers[index] = done.error_code === null
        ? {
          task_id: done.task_id,
          status_code: 200,
          status: done.status,
          generation_processed_at: done.generation_processed_at,
        }
        : {
          task_id: round[done.ordinal - 1].item.task_id,
          status_code: errorStatus(done.error_code),
          error: done.error,
        };
    }
  }
  return answers;
}

type Beaten = {
  ordinal: number;
  task_id: string;
  lease_expires_at: string | null;
  error_code: string | null;
  error: string | null;
};

/** Many heartbeats, each answered on its own, in order; one statement per round, as completeTasks. */
const heartbeatTasks: Route = async (caller, body) => {
  const items = body.tasks as Body[];
  items.forEach((item) => checkLease(item.lease_seconds));
  const answers: Record<string, unknown>[] = new Array(items.length);
  for (const round of distinctRounds(items)) {
    const payload = JSON.stringify(round.map(({ item }) => item));
    const [row] = await query(() =>
      sql()`
        select coalesce(json_agg(b order by b.ordinal), '[]')::text as json
          from (select array_agg((e->>'task_id')::uuid order by n) as ids,
                       array_agg(e->>'worker_id' order by n) as workers,
                       array_agg((e->>'attempt')::integer order by n) as attempts,
                       array_agg((e->>'lease_seconds')::integer order by n) as leases
                  from jsonb_array_elements(${payload}::text::jsonb) with ordinality as x(e, n)) a,
               public.taskclaim_heartbeat_batch(a.ids, a.workers, a.attempts, a.leases, ${caller.userId}::uuid) b`
    );
    for (const beaten of JSON.parse(row.json) as Beaten[]) {
      const { index, item } = round[beaten.ordinal - 1];
      answers[index] = beaten.error_code === null
        ? { task_id: beaten.task_id, status_code: 200, lease_expires_at: beaten.lease_expires_at }
        : { task_id: item.task_id, status_code: errorStatus(beaten.error_code), error: beaten.error };
    }
  }
  return json({ results: answers });
};

const failTask: Route = async (caller, body) => {
  const [row] = await query(() =>
    sql()`
      select row_to_json(c)::text as json
        from public.taskclaim_fail(${body.task_id as string}::uuid, ${body.worker_id as string},
                                   ${(body.attempt ?? null) as number | null}::integer,
                                   ${(body.error ?? null) as string | null},
                                   ${(body.retry ?? false) as boolean}::boolean, ${caller.userId}::uuid) c`
  );
  return jsonText(row.json);
};

const releaseTask: Route = async (caller, body) => {
  await query(() =>
    sql()`
      select public.taskclaim_release(${body.task_id as string}::uuid, ${body.worker_id as string},
                                      ${(body.attempt ?? null) as number | null}::integer,
                                      ${caller.userId}::uuid)`
  );
  return json({ task_id: body.task_id, status: "Queued" });
};

const createTask: Route = async (caller, body) => {
  const [row] = await query(() =>
    sql()`
      select c.created, row_to_json(c)::text as json
        from public.taskclaim_create_task(${body.project_id as string}::uuid, ${body.task_type as string},
                                          ${jsonParam(body.params ?? {})}::text::jsonb,
                                          ${(body.dependant_on ?? null) as string | null}::uuid,
                                          ${(body.idempotency_key ?? null) as string | null},
                                          ${caller.userId}::uuid,
                                          ${(body.max_attempts ??
      LIMITS.DEFAULT_MAX_ATTEMPTS) as number}::integer
                                         ) c`
  );
  return jsonText(row.json, row.created ? 201 : 200);
};

const COUNTS = ["queued", "blocked", "in_progress", "complete", "failed", "cancelled"] as const;

const taskCounts: Route = async (caller) => {
  const [row] = await query(() =>
    sql()`
      select coalesce(json_agg(c), '[]')::text as json
        from public.taskclaim_task_counts(${caller.userId}::uuid) c`
  );
  const byType = JSON.parse(row.json) as Record<string, number>[];
  const totals = Object.fromEntries(COUNTS.map((k) => [k, byType.reduce((sum, r) => sum + r[k], 0)]));
  // scope.user_id null: every user's queue (the service key)
  return json({ scope: { user_id: caller.userId }, totals, by_task_type: byType });
};

// -- operators: the SQL functions answer with the task's JSON text --------------------------------

const getTask: Route = async (caller, body) => {
  const [row] = await query(() =>
    sql()`select public.taskclaim_get_task(${body.task_id as string}::uuid, ${caller.userId}::uuid) as task`
  );
  return jsonText(row.task);
};

const listTasks: Route = async (caller, body) => {
  const limit = (body.limit as number | undefined) ?? LIMITS.DEFAULT_LIST_TASKS;
  const rows = await query(() =>
    sql()`
      select cursor, task
        from public.taskclaim_list_tasks(${caller.userId}::uuid,
                                         ${(body.status ?? null) as string | null}::public.task_status,
                                         ${(body.task_type ?? null) as string | null},
                                         ${(body.project_id ?? null) as string | null}::uuid,
                                         ${(body.worker_id ?? null) as string | null},
                                         ${body.order === "oldest"}::boolean,
                                         ${(body.cursor ?? null) as string | null}, ${limit}::integer)`
  );
  const next = rows.length === limit ? rows[rows.length - 1].cursor : null;
  return jsonText(`{"tasks":[${rows.map((r) => r.task).join(",")}],"next_cursor":${JSON.stringify(next)}}`);
};

const cancelTask: Route = async (caller, body) => {
  const [row] = await query(() =>
    sql()`select public.taskclaim_cancel_task(${body.task_id as string}::uuid,
                                              ${(body.reason ?? null) as string | null},
                                              ${caller.userId}::uuid) as task`
  );
  return jsonText(row.task);
};

const retryTask: Route = async (caller, body) => {
  const [row] = await query(() =>
    sql()`select public.taskclaim_retry_task(${body.task_id as string}::uuid, ${caller.userId}::uuid) as task`
  );
  return jsonText(row.task);
};

export const ROUTES: Record<FunctionName, Route> = {
  "claim-next-task": claimNextTask,
  "claim-tasks": claimTasks,
  "heartbeat": heartbeat,
  "heartbeat-tasks": heartbeatTasks,
  "complete-task": completeTask,
  "complete-tasks": completeTasks,
  "fail-task": failTask,
  "release-task": releaseTask,
  "create-task": createTask,
  "task-counts": taskCounts,
  "get-task": getTask,
  "list-tasks": listTasks,
  "cancel-task": cancelTask,
  "retry-task": retryTask,
};
