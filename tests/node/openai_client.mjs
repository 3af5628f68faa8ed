// Real-client check of the coordinator with the official `openai` npm package.
//
// Usage: node openai_client.mjs BASE_URL [API_KEY]
//   BASE_URL  e.g. http://127.0.0.1:8000 or http://127.0.0.1:8000/v1 ("/v1" is appended if missing)
//   API_KEY   optional; defaults to "sk-test" (the client requires one; the coordinator may ignore it)
//
// Does one non-stream and one streamed chat.completions.create and prints, on stdout, one JSON line:
//   {"non_stream_content": "...", "stream_content": "...", "chunks": N, ...}
// Exits non-zero (with the error on stderr) on any error.
import OpenAI from "openai";

function fail(msg) {
  process.stderr.write(`openai_client.mjs: ${msg}\n`);
  process.exit(1);
}

async function main() {
  const [baseArg, keyArg] = process.argv.slice(2);
  if (!baseArg) fail("usage: node openai_client.mjs BASE_URL [API_KEY]");
  let baseURL = baseArg.replace(/\/+$/, "");
  if (!baseURL.endsWith("/v1")) baseURL += "/v1";

  const client = new OpenAI({
    baseURL,
    apiKey: keyArg || "sk-test",
    maxRetries: 0, // a retry would hide a coordinator failure
    timeout: 30_000,
  });

  const messages = [{ role: "user", content: "Say hello" }];

  const completion = await client.chat.completions.create({ model: "fake-model", messages });
  const nonStreamContent = completion?.choices?.[0]?.message?.content;
  if (typeof nonStreamContent !== "string") {
    fail(`non-stream answer has no choices[0].message.content: ${JSON.stringify(completion)}`);
  }

  const stream = await client.chat.completions.create({ model: "fake-model", messages, stream: true });
  let streamContent = "";
  let chunks = 0;
  let finishReason = null;
  const ids = new Set();
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.id) ids.add(chunk.id);
    const choice = chunk?.choices?.[0];
    if (choice?.delta?.content) streamContent += choice.delta.content;
    if (choice?.finish_reason) finishReason = choice.finish_reason;
  }

  process.stdout.write(
    JSON.stringify({
      non_stream_content: nonStreamContent,
      non_stream_id: completion.id ?? null,
      stream_content: streamContent,
      chunks,
      finish_reason: finishReason,
      stream_ids: ids.size,
    }) + "\n",
  );
}

main().catch((err) => {
  const status = err?.status !== undefined ? ` (status ${err.status})` : "";
  fail(`${err?.name ?? "Error"}${status}: ${err?.message ?? err}`);
});
