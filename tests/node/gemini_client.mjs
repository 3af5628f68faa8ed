// Real-client check of the coordinator's Gemini front end with the official `@google/genai`.
//
// Usage: node gemini_client.mjs BASE_URL [API_KEY [SCENARIO ...]]   (see client_common.mjs)
//   scenarios: text stream tools stream_tools models
//
// What @google/genai 2.32.0 sends (read in node_modules/@google/genai/dist/node/index.mjs:
// ApiClient getRequestUrlInternal / getDefaultHeaders, NodeAuth addKeyHeader, Models
// generateContent / generateContentStream / list), checked against a stub server:
//   baseUrl = BASE_URL (the root), apiVersion v1beta (GOOGLE_AI_API_DEFAULT_VERSION):
//   POST /v1beta/models/MODEL:generateContent           (MODEL gets a "models/" prefix: tModel)
//   POST /v1beta/models/MODEL:streamGenerateContent?alt=sse
//   GET  /v1beta/models                                   (models.list; pageToken when paging)
//   x-goog-api-key: API_KEY (no Authorization, no key= query); Content-Type: application/json
//   (on the GET too); Accept: */* (streams too); x-server-timeout: 30 (httpOptions.timeout in
//   seconds); User-Agent and x-goog-api-client: google-genai-sdk/2.32.0 gl-node/v20.20.2.
//   Body: {contents: [{parts: [...], role}], tools?, generationConfig?}: a string `contents`
//   becomes [{parts:[{text}], role:"user"}]; any `config` adds generationConfig (here {});
//   `config.tools` goes out as
//   tools: [{functionDeclarations: [{name, description, parameters}]}]; the round trip's second
//   request sends the model's content as returned ({role:"model", parts:[{functionCall:
//   {name, args}}]}) and {role:"user", parts:[{functionResponse: {name, response}}]}.
//   The stream is read from `data:` lines, one GenerateContentResponse each. 2.x's automatic
//   stream continuation re-requests only when a chunk carries a `continuationToken`; without
//   one a stream that ends without finishReason just ends (no hidden retry). No retries for
//   unary calls unless httpOptions.retryOptions is set.
import { GoogleGenAI } from "@google/genai";
import {
  MODEL, PROMPT, REQUEST_TIMEOUT_MS, TOOL_DESCRIPTION, TOOL_NAME, TOOL_PROMPT, TOOL_RESULT,
  eventSummary, parseArgs, runScenarios,
} from "./client_common.mjs";

const SCRIPT = "gemini_client.mjs";
const { baseURL, apiKey, scenarios } = parseArgs(SCRIPT, ["text", "stream", "tools", "stream_tools", "models"]);

const ai = new GoogleGenAI({
  apiKey,
  httpOptions: { baseUrl: baseURL, timeout: REQUEST_TIMEOUT_MS },
});

const TOOLS = [{
  functionDeclarations: [{
    name: TOOL_NAME,
    description: TOOL_DESCRIPTION,
    parameters: { type: "OBJECT", properties: { city: { type: "STRING" } }, required: ["city"] },
  }],
}];

// Text of the first candidate's parts (the SDK's `text` getter warns on function-call parts).
function textOf(response) {
  return (response?.candidates?.[0]?.content?.parts ?? [])
    .filter((p) => typeof p.text === "string" && !p.thought)
    .map((p) => p.text)
    .join("");
}

function callsOf(response) {
  return (response?.candidates?.[0]?.content?.parts ?? [])
    .filter((p) => p.functionCall)
    .map((p) => ({ name: p.functionCall.name, args: p.functionCall.args ?? null, id: p.functionCall.id ?? null }));
}

function summary(response) {
  const cand = response?.candidates?.[0];
  return {
    finish_reason: cand?.finishReason ?? null,
    role: cand?.content?.role ?? null,
    part_kinds: (cand?.content?.parts ?? []).map((p) => Object.keys(p).filter((k) => k !== "thoughtSignature").join("+")),
    usage: response?.usageMetadata ?? null,
    model_version: response?.modelVersion ?? null,
    response_id: response?.responseId ?? null,
  };
}

function servedBy(response) {
  const headers = response?.sdkHttpResponse?.headers ?? {};
  return headers["x-fake-child"] ?? null;
}

// generateContentStream to its end: per-chunk text, the calls seen, the last usage and
// finishReason, and the model content assembled from every chunk (for a follow-up request).
async function readStream(params) {
  const stream = await ai.models.generateContentStream(params);
  const kinds = [];
  let text = "";
  let chunks = 0;
  let usage = null;
  let finish = null;
  const calls = [];
  const parts = [];
  for await (const chunk of stream) {
    chunks += 1;
    const cand = chunk.candidates?.[0];
    for (const p of cand?.content?.parts ?? []) {
      kinds.push(p.functionCall ? "functionCall" : typeof p.text === "string" ? "text" : Object.keys(p).join("+"));
      parts.push(p);
    }
    text += textOf(chunk);
    calls.push(...callsOf(chunk));
    if (chunk.usageMetadata) usage = chunk.usageMetadata;
    if (cand?.finishReason) finish = cand.finishReason;
  }
  return {
    content: { role: "model", parts },
    result: { chunks, part_kinds: eventSummary(kinds), text, finish_reason: finish, usage, calls },
  };
}

function followUp(modelContent, calls) {
  return [
    { role: "user", parts: [{ text: TOOL_PROMPT }] },
    modelContent,
    {
      role: "user",
      parts: calls.map((c) => ({
        functionResponse: { name: c.name, response: { result: TOOL_RESULT }, ...(c.id ? { id: c.id } : {}) },
      })),
    },
  ];
}

const table = {
  async text() {
    const r = await ai.models.generateContent({ model: MODEL, contents: PROMPT });
    return { ...summary(r), text: textOf(r), served_by: servedBy(r) };
  },

  async stream() {
    const { result } = await readStream({ model: MODEL, contents: PROMPT });
    return result;
  },

  async tools() {
    const first = await ai.models.generateContent({ model: MODEL, contents: TOOL_PROMPT, config: { tools: TOOLS } });
    const calls = callsOf(first);
    if (!calls.length) return { first: summary(first), first_text: textOf(first), calls };
    const second = await ai.models.generateContent({
      model: MODEL, contents: followUp(first.candidates[0].content, calls), config: { tools: TOOLS },
    });
    return { first: summary(first), calls, served_by: servedBy(first), second: summary(second), text: textOf(second) };
  },

  async stream_tools() {
    const first = await readStream({ model: MODEL, contents: TOOL_PROMPT, config: { tools: TOOLS } });
    const out = { first: first.result, calls: first.result.calls };
    if (!out.calls.length) return out;
    const second = await readStream({
      model: MODEL, contents: followUp(first.content, out.calls), config: { tools: TOOLS },
    });
    return { ...out, second: second.result, text: second.result.text };
  },

  async models() {
    const pager = await ai.models.list();
    const names = [];
    for await (const m of pager) {
      names.push(m.name);
      if (names.length > 1000) break; // a pager that never ends must not hang the run
    }
    return { names };
  },
};

await runScenarios(SCRIPT, table, scenarios);
