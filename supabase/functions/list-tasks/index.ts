// POST /functions/v1/list-tasks: the same contract as taskclaim serve's (see _shared/routes.ts).
import { serveFunction } from "../_shared/function.ts";

serveFunction("list-tasks");
