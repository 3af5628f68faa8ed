// Shared by the protocol client scripts (responses_client.mjs, anthropic_client.mjs,
// gemini_client.mjs): argv parsing, one JSON line of results, a bound on the whole run.
//
// Every script: node SCRIPT.mjs BASE_URL [API_KEY [SCENARIO ...]]
//   BASE_URL  the coordinator's root, e.g. http://127.0.0.1:8000 (each script adds its own prefix)
//   API_KEY   defaults to "sk-test"
//   SCENARIO  the scenarios to run, in order (default: all of the script's)
// Environment: CLIENT_MODEL (default "fake-model"), CLIENT_TIMEOUT_MS (default 45000: the whole
// run; on expiry the results so far are printed with "timed_out": true and the exit code is 2).
// Output: one JSON line {SCENARIO: result | {"error": {...}}, ...}; exit 1 when a scenario failed.

export const MODEL = process.env.CLIENT_MODEL || "fake-model";
export const PROMPT = "Say hello";
// The fake child calls the tool named after "call tool" with the JSON object that follows
// (docs/fake-child-contract.md behaviour 18), and answers "tool said: RESULT" after the result.
export const TOOL_NAME = "get_weather";
export const TOOL_ARGS = { city: "Paris" };
export const TOOL_PROMPT = `Weather, please: call tool ${TOOL_NAME} ${JSON.stringify(TOOL_ARGS)}`;
export const TOOL_RESULT = "sunny, 21 C";
export const TOOL_DESCRIPTION = "The current weather in a city";
// One per-request timeout for every SDK: a hung coordinator fails the scenario, not the run.
export const REQUEST_TIMEOUT_MS = 30_000;

export function parseArgs(script, allScenarios) {
  const [base, key, ...wanted] = process.argv.slice(2);
  if (!base) {
    process.stderr.write(`usage: node ${script} BASE_URL [API_KEY [SCENARIO ...]]\n` +
      `scenarios: ${allScenarios.join(" ")}\n`);
    process.exit(64);
  }
  const unknown = wanted.filter((s) => !allScenarios.includes(s));
  if (unknown.length) {
    process.stderr.write(`${script}: unknown scenario(s) ${unknown.join(", ")}; known: ` +
      `${allScenarios.join(" ")}\n`);
    process.exit(64);
  }
  return {
    baseURL: base.replace(/\/+$/, ""),
    apiKey: key || "sk-test",
    scenarios: wanted.length ? wanted : allScenarios,
  };
}

export function describeError(err) {
  return {
    name: err?.name ?? typeof err,
    status: err?.status ?? null,
    message: String(err?.message ?? err).slice(0, 2000),
  };
}

// Event names in first-seen order, and how often each came.
export function eventSummary(types) {
  const counts = {};
  for (const t of types) counts[t] = (counts[t] ?? 0) + 1;
  return { order: Object.keys(counts), counts };
}

export function parseJSON(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// Runs the scenarios one after another; prints the JSON line and exits.
export async function runScenarios(script, table, scenarios) {
  const out = {};
  let printed = false;
  const print = (extra) => {
    if (printed) return;
    printed = true;
    process.stdout.write(JSON.stringify({ ...out, ...extra }) + "\n");
  };
  const limit = Number(process.env.CLIENT_TIMEOUT_MS || 45_000);
  const timer = setTimeout(() => {
    print({ timed_out: true });
    process.stderr.write(`${script}: timed out after ${limit} ms\n`);
    process.exit(2);
  }, limit);
  let failed = false;
  for (const name of scenarios) {
    try {
      out[name] = await table[name]();
    } catch (err) {
      failed = true;
      out[name] = { error: describeError(err) };
      process.stderr.write(`${script}: ${name}: ${err?.stack ?? err}\n`);
    }
  }
  clearTimeout(timer);
  print({});
  process.exit(failed ? 1 : 0);
}
