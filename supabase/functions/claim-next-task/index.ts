// POST /functions/v1/claim-next-task: the same contract as taskclaim serve's (see _shared/routes.ts).
import { serveFunction } from "../_shared/function.ts";

serveFunction("claim-next-task");
