// POST /functions/v1/get-task: the same contract as taskclaim serve's (see _shared/routes.ts).
import { serveFunction } from "../_shared/function.ts";

serveFunction("get-task");
