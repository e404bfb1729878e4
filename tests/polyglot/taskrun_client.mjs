// A Node.js client of the published contract: it loads protos/ as they are, with no generated
// code, and drives a task run the way a service in another language would. It prints one JSON
// line of what it saw; tests/polyglot/test_node_client.py checks it.
//
// Usage: node taskrun_client.mjs HOST:PORT
import path from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const protos = path.resolve(here, "..", "..", "protos");
const target = process.argv[2];
if (!target) {
  console.error("usage: node taskrun_client.mjs HOST:PORT");
  process.exit(2);
}

const definition = protoLoader.loadSync("taskrun/v1/task_run_service.proto", {
  includeDirs: [protos],
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
  oneofs: true,
});
const taskrun = grpc.loadPackageDefinition(definition).taskrun.v1;
const client = new taskrun.TaskRunService(target, grpc.credentials.createInsecure());

const deadline = () => ({ deadline: Date.now() + 10_000 });

/** Call a unary method and resolve with its response (or reject with the gRPC error). */
function call(method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, deadline(), (error, response) => (error ? reject(error) : resolve(response)));
  });
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function setState(taskRunId, type) {
  const response = await call("SetTaskRunState", { task_run_id: taskRunId, state: { type } });
  check(response.status === "SET_STATE_STATUS_ACCEPT", `${type} accepted, got ${response.status}`);
  return response;
}

/** Drive one run PENDING -> RUNNING -> COMPLETED and find it again by filter. */
async function driveOneRun(tag) {
  const created = await call("CreateTaskRun", {
    task_key: "node.polyglot",
    dynamic_key: randomUUID(),
    tags: ["polyglot", tag],
    // protobufjs ships the well-known types with camelCase fields, even under keepCase.
    labels: { fields: { language: { stringValue: "javascript" } } },
  });
  const id = created.task_run.id;
  check(created.created === true, "the run was created");
  check(created.task_run.state_type === "STATE_TYPE_PENDING", "a new run is PENDING");

  await setState(id, "STATE_TYPE_RUNNING");
  const completed = await setState(id, "STATE_TYPE_COMPLETED");
  check(completed.task_run.run_count === 1, `run_count is 1, got ${completed.task_run.run_count}`);

  const read = await call("ReadTaskRuns", {
    task_runs: { tags: { all: [tag] }, state: { type: { any: ["STATE_TYPE_COMPLETED"] } } },
  });
  check(read.task_runs.length === 1, `one run matches the filter, got ${read.task_runs.length}`);
  check(read.task_runs[0].id === id, "the filter finds the run that was driven");
  const language = read.task_runs[0].labels.fields.language.stringValue;
  check(language === "javascript", `labels round-trip, got ${language}`);
  const states = await call("ReadTaskRunStates", { task_run_id: id });
  return { id, states: states.states.map((state) => state.type) };
}

/** Subscribe, schedule a task, and settle the one delivery that arrives. */
async function consumeOneDelivery() {
  const taskKey = `node.scheduled.${randomUUID()}`;
  const stream = client.SubscribeScheduledTasks(
    { task_keys: [taskKey], client_id: "node-polyglot", prefetch: 1 },
    { deadline: Date.now() + 20_000 },
  );
  const delivered = new Promise((resolve, reject) => {
    stream.once("data", resolve);
    stream.once("error", reject);
    stream.once("end", () => reject(new Error("the stream ended before a delivery")));
  });
  stream.on("error", () => {}); // the cancel below ends the stream with CANCELLED
  const scheduled = await call("CreateTaskRun", {
    task_key: taskKey,
    dynamic_key: "0",
    state: { type: "STATE_TYPE_SCHEDULED" },
  });
  const delivery = await delivered;
  check(delivery.task_run.id === scheduled.task_run.id, "the scheduled run was delivered");
  await setState(delivery.task_run.id, "STATE_TYPE_PENDING");
  stream.cancel();
  return { id: delivery.task_run.id, delivery_count: delivery.delivery_count };
}

/** Submit a background task with parameters, for a Python worker to run. */
async function submitWithParameters() {
  const created = await call("CreateTaskRun", {
    task_key: "polyglot-add",
    dynamic_key: randomUUID(),
    state: { type: "STATE_TYPE_SCHEDULED" },
    parameters: {
      fields: {
        a: { numberValue: 2 },
        b: { numberValue: 40 },
        label: { stringValue: "from node" },
      },
    },
  });
  return { id: created.task_run.id };
}

// The rich error model (AIP-193): google.rpc.Status in the grpc-status-details-bin trailer.
const rpc = new protobuf.Root();
rpc.resolvePath = (_origin, target) => path.join(protos, target);
rpc.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
const Status = rpc.lookupType("google.rpc.Status");

/** The details of a failed call, by their type name. */
function richDetails(error) {
  const [bytes] = error.metadata.get("grpc-status-details-bin");
  if (!bytes) return {};
  const status = Status.decode(bytes);
  const found = {};
  for (const detail of status.details) {
    const name = detail.type_url.split("/").pop();
    found[name] = rpc.lookupType(name).toObject(rpc.lookupType(name).decode(detail.value));
  }
  return found;
}

/** A bad argument comes back as INVALID_ARGUMENT with the field in a BadRequest, in any
 * language: read from the details, not the text. */
async function badArgument() {
  try {
    await call("ReadTaskRun", { task_run_id: "not-a-uuid" });
  } catch (error) {
    const details = richDetails(error);
    return {
      code: grpc.status[error.code],
      details: error.details,
      violations: details["google.rpc.BadRequest"]?.field_violations ?? [],
      reason: details["google.rpc.ErrorInfo"]?.reason,
      domain: details["google.rpc.ErrorInfo"]?.domain,
    };
  }
  throw new Error("a malformed id was accepted");
}

try {
  const tag = `polyglot-${randomUUID()}`;
  const driven = await driveOneRun(tag);
  const delivered = await consumeOneDelivery();
  const invalid = await badArgument();
  const submitted = await submitWithParameters();
  console.log(JSON.stringify({ driven, delivered, invalid, submitted }));
  client.close();
} catch (error) {
  console.error(error);
  client.close();
  process.exit(1);
}
