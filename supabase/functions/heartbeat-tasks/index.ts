// POST /functions/v1/heartbeat-tasks: the same contract as taskclaim serve's (see _shared/routes.ts).
import { serveFunction } from "../_shared/function.ts";

serveFunction("heartbeat-tasks");
