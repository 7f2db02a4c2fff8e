-- The queue: projects owned by users, tasks in projects, personal access tokens kept only as hashes.

create type public.task_status as enum ('Queued', 'In Progress', 'Complete', 'Failed', 'Cancelled');

create table public.projects (
  id         uuid primary key default gen_random_uuid(),
  user_id    uuid not null,
  name       text,
  created_at timestamptz not null default now()
);
create index projects_user_id_idx on public.projects (user_id);

create table public.tasks (
  id                      uuid primary key default gen_random_uuid(),
  task_type               text not null,
  params                  jsonb not null default '{}'::jsonb,
  status                  public.task_status not null default 'Queued',
  project_id              uuid not null references public.projects (id) on delete cascade,
  -- The owner, copied from the project by a trigger so that a user's claim is one index scan.
  user_id                 uuid not null,
  dependant_on            uuid references public.tasks (id) on delete set null,
  -- True while dependant_on names a task that is not Complete yet. Only ready rows are in the claim index.
  blocked                 boolean not null default false,
  worker_id               text,
  created_at              timestamptz not null default now(),
  updated_at              timestamptz not null default now(),
  generation_started_at   timestamptz,
  generation_processed_at timestamptz,
  -- Each claim counts one attempt; (worker_id, attempts) fences completion to the current holder.
  attempts                integer not null default 0,
  max_attempts            integer not null default 3 check (max_attempts >= 1),
  lease_expires_at        timestamptz,
  claim_id                uuid,
  idempotency_key         text,
  error                   text,
  result                  jsonb,
  output_location         text
);

-- The claim's indexes hold only ready rows: finished and blocked tasks never slow a claim down.
create index tasks_ready_idx on public.tasks (created_at, id)
  where status = 'Queued' and not blocked;
create index tasks_ready_user_idx on public.tasks (user_id, created_at, id)
  where status = 'Queued' and not blocked;
create index tasks_lease_idx on public.tasks (lease_expires_at)
  where status = 'In Progress';
create index tasks_dependant_on_idx on public.tasks (dependant_on)
  where dependant_on is not null;
create index tasks_project_id_idx on public.tasks (project_id);
create unique index tasks_claim_id_key on public.tasks (claim_id)
  where claim_id is not null;
create unique index tasks_idempotency_key on public.tasks (project_id, idempotency_key)
  where idempotency_key is not null;

create table public.user_api_token (
  id           uuid primary key default gen_random_uuid(),
  user_id      uuid not null,
  jti_hash     text not null unique check (jti_hash ~ '^[0-9a-f]{64}$'),
  label        text,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz,
  last_used_at timestamptz,
  revoked_at   timestamptz
);
create index user_api_token_user_id_idx on public.user_api_token (user_id);

-- Triggers keep the owner and the blocked flag true whoever writes the rows (our functions, SQL, PostgREST).

create function public.taskclaim_tasks_before_insert() returns trigger
  language plpgsql
  set search_path = ''
as $$
declare
  v_owner  uuid;
  v_parent public.task_status;
begin
  select p.user_id into v_owner from public.projects p where p.id = new.project_id;
  if v_owner is null then
    raise exception 'project % does not exist', new.project_id using errcode = '23503';
  end if;
  new.user_id := v_owner;
  new.blocked := false;
  if new.dependant_on is not null then
    -- FOR SHARE waits for a concurrent status change of the parent, so its trigger cannot miss this row.
    select t.status into v_parent from public.tasks t where t.id = new.dependant_on for share;
    if v_parent is null then
      raise exception 'dependency % does not exist', new.dependant_on using errcode = '23503';
    elsif v_parent in ('Failed', 'Cancelled') then
      new.status := 'Cancelled';
      new.error := format('dependency %s is %s', new.dependant_on, v_parent);
    elsif v_parent <> 'Complete' then
      new.blocked := true;
    end if;
  end if;
  return new;
end
$$;

create trigger tasks_before_insert before insert on public.tasks
  for each row execute function public.taskclaim_tasks_before_insert();

create function public.taskclaim_tasks_after_end() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  if new.status = 'Complete' then
    update public.tasks t set blocked = false, updated_at = now()
     where t.dependant_on = new.id and t.status = 'Queued' and t.blocked;
  else
    -- A parent that will never complete ends its dependants instead of leaving them blocked for ever.
    update public.tasks t
       set status = 'Cancelled', blocked = false, updated_at = now(),
           error = format('dependency %s is %s', new.id, new.status)
     where t.dependant_on = new.id and t.status = 'Queued';
  end if;
  return null;
end
$$;

create trigger tasks_after_end after update of status on public.tasks
  for each row
  when (new.status in ('Complete', 'Failed', 'Cancelled') and old.status is distinct from new.status)
  execute function public.taskclaim_tasks_after_end();

create function public.taskclaim_projects_owner_changed() returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  update public.tasks t set user_id = new.user_id where t.project_id = new.id;
  return null;
end
$$;

create trigger projects_owner_changed after update of user_id on public.projects
  for each row when (old.user_id is distinct from new.user_id)
  execute function public.taskclaim_projects_owner_changed();

-- Row Level Security, as the plan's §5, on the owner of the task's project.

alter table public.projects enable row level security;
alter table public.tasks enable row level security;
alter table public.user_api_token enable row level security;  -- no policy: only the service reads it

create policy "select_own_projects" on public.projects
  for select to authenticated using (user_id = (select auth.uid()));

create policy "select_own_queued" on public.tasks
  for select to authenticated using (user_id = (select auth.uid()) and status = 'Queued');

create policy "update_own_to_in_progress" on public.tasks
  for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()) and status = 'In Progress');

revoke all on public.projects, public.tasks, public.user_api_token from public, anon, authenticated;
grant select on public.projects to authenticated;
grant select, update on public.tasks to authenticated;
grant select, insert, update, delete on public.projects, public.tasks, public.user_api_token to service_role;

revoke all on function public.taskclaim_tasks_before_insert() from public, anon, authenticated;
revoke all on function public.taskclaim_tasks_after_end() from public, anon, authenticated;
revoke all on function public.taskclaim_projects_owner_changed() from public, anon, authenticated;
