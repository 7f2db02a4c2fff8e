// POST /functions/v1/complete-tasks: the same contract as taskclaim serve's (see _shared/routes.ts).
import { serveFunction } from "../_shared/function.ts";

serveFunction("complete-tasks");
