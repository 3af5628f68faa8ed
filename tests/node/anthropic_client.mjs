// Real-client check of the coordinator's POST /v1/messages with the official `@anthropic-ai/sdk`.
//
// Usage: node anthropic_client.mjs BASE_URL [API_KEY [SCENARIO ...]]   (see client_common.mjs)
//   scenarios: text stream tools stream_tools
//
// What @anthropic-ai/sdk 1.15.0 sends (read in node_modules/@anthropic-ai/sdk:
// resources/messages/messages.js `create` posts '/v1/messages'; client.js buildHeaders,
// apiKeyAuth; lib/MessageStream.js), checked against a stub server:
//   POST {baseURL}/v1/messages, baseURL = BASE_URL (the root, no /v1)  ->  POST /v1/messages
//   Authorization: Bearer API_KEY - NOT x-api-key: since 1.0.0 `apiKeyAuth` sends the key as a
//   bearer token (0.x sent X-Api-Key); anthropic-version: 2026-10-21 (0.x: 2023-06-01);
//   Content-Type: application/json; Accept: application/json (also for streams); User-Agent
//   Anthropic/JS 1.15.0; X-Stainless-Lang, -Package-Version, -OS, -Arch, -Runtime,
//   -Runtime-Version, -Retry-Count (0), -Timeout (30).
//   Body: {model, max_tokens, messages, ...}; `stream: true` for messages.stream; tools as
//   [{name, description, input_schema}]; the round trip's second request sends the assistant
//   message with the first answer's content blocks (tool_use: id, name, input) and a user
//   message [{type:"tool_result", tool_use_id, content}].
//   MessageStream needs message_start first and message_stop last (it throws "stream ended
//   without producing a Message with role=assistant" otherwise); tool_use input comes from
//   input_json_delta partial_json pieces, parsed at content_block_stop.
import Anthropic from "@anthropic-ai/sdk";
import {
  MODEL, PROMPT, REQUEST_TIMEOUT_MS, TOOL_DESCRIPTION, TOOL_NAME, TOOL_PROMPT, TOOL_RESULT,
  eventSummary, parseArgs, runScenarios,
} from "./client_common.mjs";

const SCRIPT = "anthropic_client.mjs";
const { baseURL, apiKey, scenarios } = parseArgs(SCRIPT, ["text", "stream", "tools", "stream_tools"]);

const client = new Anthropic({
  baseURL,
  apiKey,
  maxRetries: 0, // a retry would hide a coordinator failure
  timeout: REQUEST_TIMEOUT_MS,
});

const MAX_TOKENS = 256;
const TOOLS = [{
  name: TOOL_NAME,
  description: TOOL_DESCRIPTION,
  input_schema: {
    type: "object",
    properties: { city: { type: "string" } },
    required: ["city"],
  },
}];

function textOf(message) {
  return (message?.content ?? []).filter((b) => b.type === "text").map((b) => b.text).join("");
}

function toolUses(message) {
  return (message?.content ?? [])
    .filter((b) => b.type === "tool_use")
    .map((b) => ({ id: b.id, name: b.name, input: b.input }));
}

function summary(message) {
  return {
    id: message?.id ?? null,
    type: message?.type ?? null,
    role: message?.role ?? null,
    model: message?.model ?? null,
    stop_reason: message?.stop_reason ?? null,
    content_types: (message?.content ?? []).map((b) => b.type),
    usage: message?.usage ?? null,
  };
}

async function create(body) {
  const { data, response } = await client.messages.create(body).withResponse();
  return { data, servedBy: response.headers.get("x-fake-child") };
}

// messages.stream to its end: raw event types, text deltas, input_json_delta pieces, and the
// SDK's own accumulated final message.
async function readStream(body) {
  const stream = client.messages.stream(body);
  const types = [];
  let text = "";
  let partialJson = "";
  for await (const event of stream) {
    types.push(event.type);
    if (event.type === "content_block_delta" && event.delta?.type === "text_delta") text += event.delta.text;
    if (event.type === "content_block_delta" && event.delta?.type === "input_json_delta") {
      partialJson += event.delta.partial_json;
    }
  }
  const final = await stream.finalMessage();
  return {
    final,
    result: { events: eventSummary(types), delta_text: text, partial_json: partialJson,
              ...summary(final), text: textOf(final) },
  };
}

function followUp(firstMessage, uses) {
  return [
    { role: "user", content: TOOL_PROMPT },
    { role: "assistant", content: firstMessage.content },
    {
      role: "user",
      content: uses.map((u) => ({ type: "tool_result", tool_use_id: u.id, content: TOOL_RESULT })),
    },
  ];
}

const table = {
  async text() {
    const { data, servedBy } = await create({
      model: MODEL, max_tokens: MAX_TOKENS, messages: [{ role: "user", content: PROMPT }],
    });
    return { ...summary(data), text: textOf(data), served_by: servedBy };
  },

  async stream() {
    const { result } = await readStream({
      model: MODEL, max_tokens: MAX_TOKENS, messages: [{ role: "user", content: PROMPT }],
    });
    return result;
  },

  async tools() {
    const first = await create({
      model: MODEL, max_tokens: MAX_TOKENS, tools: TOOLS,
      messages: [{ role: "user", content: TOOL_PROMPT }],
    });
    const uses = toolUses(first.data);
    if (!uses.length) return { first: summary(first.data), first_text: textOf(first.data), calls: uses };
    const second = await create({
      model: MODEL, max_tokens: MAX_TOKENS, tools: TOOLS, messages: followUp(first.data, uses),
    });
    return {
      first: summary(first.data), calls: uses, served_by: first.servedBy,
      second: summary(second.data), text: textOf(second.data),
    };
  },

  async stream_tools() {
    const first = await readStream({
      model: MODEL, max_tokens: MAX_TOKENS, tools: TOOLS,
      messages: [{ role: "user", content: TOOL_PROMPT }],
    });
    const uses = toolUses(first.final);
    const out = { first: first.result, calls: uses };
    if (!uses.length) return out;
    const second = await readStream({
      model: MODEL, max_tokens: MAX_TOKENS, tools: TOOLS, messages: followUp(first.final, uses),
    });
    return { ...out, second: second.result, text: second.result.text };
  },
};

await runScenarios(SCRIPT, table, scenarios);
