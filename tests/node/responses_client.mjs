// Real-client check of the coordinator's POST /v1/responses with the official `openai` package.
//
// Usage: node responses_client.mjs BASE_URL [API_KEY [SCENARIO ...]]   (see client_common.mjs)
//   scenarios: text stream tools stream_tools
//
// What openai 6.49.0 sends (read in node_modules/openai: resources/responses/responses.js
// `create` posts '/responses'; client.js buildURL/buildHeaders/apiKeyAuth), checked against a
// stub server:
//   POST {baseURL}/responses, baseURL = BASE_URL + "/v1"  ->  POST /v1/responses
//   Authorization: Bearer API_KEY; Content-Type: application/json; Accept: application/json
//   (also for stream: true - the SDK does not ask for text/event-stream); User-Agent
//   OpenAI/JS 6.49.0; X-Stainless-Lang, -Package-Version, -OS, -Arch, -Runtime,
//   -Runtime-Version, -Retry-Count (0) (no X-Stainless-Timeout, unlike the Anthropic SDK).
//   Body: {model, input, ...}: `input` a string, or a list of items; the tool round trip's
//   second request sends {role:"user", content}, the function_call item as the first answer
//   returned it (id, call_id, name, arguments, status, type) and
//   {type:"function_call_output", call_id, output}; `tools`: [{type:"function", name,
//   description, parameters, strict}] (flat, not nested under "function").
//   A stream is read from `data:` lines (core/streaming.js; the `event:` line is not needed);
//   an event whose data has a truthy `error` throws.
import OpenAI from "openai";
import {
  MODEL, PROMPT, REQUEST_TIMEOUT_MS, TOOL_DESCRIPTION, TOOL_NAME, TOOL_PROMPT, TOOL_RESULT,
  eventSummary, parseArgs, parseJSON, runScenarios,
} from "./client_common.mjs";

const SCRIPT = "responses_client.mjs";
const { baseURL, apiKey, scenarios } = parseArgs(SCRIPT, ["text", "stream", "tools", "stream_tools"]);

const client = new OpenAI({
  baseURL: baseURL.endsWith("/v1") ? baseURL : `${baseURL}/v1`,
  apiKey,
  maxRetries: 0, // a retry would hide a coordinator failure
  timeout: REQUEST_TIMEOUT_MS,
});

const TOOLS = [{
  type: "function",
  name: TOOL_NAME,
  description: TOOL_DESCRIPTION,
  parameters: {
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
    additionalProperties: false,
  },
  strict: false,
}];

// The text of a response's message items (the SDK adds `output_text` only to non-stream answers).
function outputText(response) {
  return (response?.output ?? [])
    .filter((item) => item.type === "message")
    .flatMap((item) => item.content ?? [])
    .filter((part) => part.type === "output_text")
    .map((part) => part.text)
    .join("");
}

function functionCalls(response) {
  return (response?.output ?? [])
    .filter((item) => item.type === "function_call")
    .map((item) => ({
      name: item.name, arguments: item.arguments, args: parseJSON(item.arguments),
      call_id: item.call_id, id: item.id ?? null, status: item.status ?? null,
    }));
}

function summary(response) {
  return {
    id: response?.id ?? null,
    object: response?.object ?? null,
    status: response?.status ?? null,
    model: response?.model ?? null,
    output_types: (response?.output ?? []).map((item) => item.type),
    usage: response?.usage ?? null,
  };
}

async function create(body) {
  const { data, response } = await client.responses.create(body).withResponse();
  return { data, servedBy: response.headers.get("x-fake-child") };
}

// Reads a stream to its end: event types, text deltas, function-call argument deltas, and the
// response of the last response.completed/failed/incomplete event.
async function readStream(body) {
  const stream = await client.responses.create({ ...body, stream: true });
  const types = [];
  let text = "";
  let argDeltas = "";
  let argsDone = null;
  let final = null;
  let lastSeq = -1;
  let seqOrdered = true;
  for await (const event of stream) {
    types.push(event.type);
    if (typeof event.sequence_number === "number") {
      if (event.sequence_number <= lastSeq) seqOrdered = false;
      lastSeq = event.sequence_number;
    }
    if (event.type === "response.output_text.delta") text += event.delta;
    if (event.type === "response.function_call_arguments.delta") argDeltas += event.delta;
    if (event.type === "response.function_call_arguments.done") argsDone = event.arguments;
    if (["response.completed", "response.failed", "response.incomplete"].includes(event.type)) {
      final = event.response;
    }
  }
  return {
    final, text, argDeltas, argsDone,
    result: {
      events: eventSummary(types), sequence_ordered: seqOrdered, delta_text: text,
      ...summary(final), text: outputText(final),
    },
  };
}

// The second request of a tool round trip: the history, the first answer's output items, the
// result of each call.
function followUp(firstOutput, calls) {
  return [
    { role: "user", content: TOOL_PROMPT },
    ...firstOutput,
    ...calls.map((c) => ({ type: "function_call_output", call_id: c.call_id, output: TOOL_RESULT })),
  ];
}

const table = {
  async text() {
    const { data, servedBy } = await create({ model: MODEL, input: PROMPT, max_output_tokens: 256 });
    return { ...summary(data), text: data.output_text, served_by: servedBy };
  },

  async stream() {
    const { result } = await readStream({ model: MODEL, input: PROMPT });
    return result;
  },

  async tools() {
    const first = await create({ model: MODEL, input: TOOL_PROMPT, tools: TOOLS });
    const calls = functionCalls(first.data);
    if (!calls.length) {
      return { first: summary(first.data), first_text: first.data.output_text, calls };
    }
    const second = await create({ model: MODEL, tools: TOOLS, input: followUp(first.data.output, calls) });
    return {
      first: summary(first.data), calls, served_by: first.servedBy,
      second: summary(second.data), text: second.data.output_text,
    };
  },

  async stream_tools() {
    const first = await readStream({ model: MODEL, input: TOOL_PROMPT, tools: TOOLS });
    const calls = functionCalls(first.final);
    const out = {
      first: first.result, calls, argument_deltas: first.argDeltas, arguments_done: first.argsDone,
    };
    if (!calls.length) return out;
    const second = await readStream({ model: MODEL, tools: TOOLS, input: followUp(first.final.output, calls) });
    return { ...out, second: second.result, text: second.result.text };
  },
};

await runScenarios(SCRIPT, table, scenarios);
