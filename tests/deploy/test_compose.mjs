// Static checks of docker/docker-compose.yml and docker/.env.docker (no Docker
// engine is used): the health check, the stop grace period, the read-only
// profile mount, the single published port, the network of its own with
// inter-container traffic off (the real child listens on 0.0.0.0 and serves its
// keys without a check: docs/real-child.md), and that every variable is documented.
//
// Run from the repository root (after `npm ci --prefix tests/deploy`):
//   node --test tests/deploy/test_compose.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE = path.join(REPO, 'docker', 'docker-compose.yml');
const ENV_FILE = path.join(REPO, 'docker', '.env.docker');
const ENTRYPOINT = path.join(REPO, 'docker', 'entrypoint.sh');

// The coordinator's SIGTERM budget: --shutdown-grace (10 s default) + --child-stop-timeout
// (30 s default) between the children's SIGTERM and SIGKILL.
const COORDINATOR_STOP_BUDGET_S = 40;
const FLAG_ENV_VARS = ['COORDINATOR_PROFILES', 'COORDINATOR_LAUNCHER', 'COORDINATOR_PYTHON',
  'COORDINATOR_HOST', 'COORDINATOR_PORT', 'BASE_API_PORT', 'BASE_STREAM_PORT',
  'BASE_CAMOUFOX_PORT', 'PORT_STEP', 'COORDINATOR_LOG_DIR'];

// .env.docker: [{name, value, active, doc}] where doc is the comment block right above.
function parseEnvFile(text) {
  const vars = [];
  let doc = [];
  for (const line of text.split('\n')) {
    const active = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    const commented = /^#\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (active || commented) {
      const m = active ?? commented;
      vars.push({ name: m[1], value: m[2], active: !!active, doc: doc.join(' ').trim() });
      doc = [];
    } else if (line.startsWith('#')) {
      doc.push(line.replace(/^#\s?/, ''));
    } else if (line.trim() === '') {
      doc = [];
    } else {
      vars.push({ name: null, value: line, active: true, doc: '' });
    }
  }
  return vars;
}

// "${NAME:-default}" / "${NAME}" with values from the env file, as Compose would.
function interpolate(value, env) {
  return String(value).replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g,
    (_, name, dflt) => (env[name] !== undefined && env[name] !== '' ? env[name] : (dflt ?? '')));
}

function durationSeconds(s) {
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s|us)/g;
  let total = 0, matched = '', m;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 }[m[2]];
    matched += m[0];
  }
  return matched === s ? total : NaN;
}

function checkCompose(composeText, envText) {
  const problems = [];
  const doc = YAML.parse(composeText);
  const envVars = parseEnvFile(envText);
  const env = Object.fromEntries(envVars.filter((v) => v.active && v.name).map((v) => [v.name, v.value]));
  const services = Object.entries(doc.services ?? {});
  if (services.length !== 1) problems.push(`expected one service, found ${services.length}`);
  const [, svc] = services[0] ?? [null, {}];

  // Health check on /ready.
  const hc = svc.healthcheck;
  const hcTest = [].concat(hc?.test ?? []).join(' ');
  if (!hc || hc.disable || !/\/ready\b/.test(hcTest)) problems.push('the service has no health check on /ready');

  // stop_grace_period above the coordinator's budget; SIGTERM.
  const grace = durationSeconds(interpolate(svc.stop_grace_period ?? '10s', env));
  const graceDefault = durationSeconds(interpolate(svc.stop_grace_period ?? '10s', {}));
  if (!(grace > COORDINATOR_STOP_BUDGET_S)) problems.push(`stop_grace_period ${grace}s is not above ${COORDINATOR_STOP_BUDGET_S}s`);
  if (!(graceDefault > COORDINATOR_STOP_BUDGET_S)) problems.push(`stop_grace_period's built-in default ${graceDefault}s is not above ${COORDINATOR_STOP_BUDGET_S}s`);
  if (svc.stop_signal !== undefined && svc.stop_signal !== 'SIGTERM') problems.push(`stop_signal is ${svc.stop_signal}`);
  if (svc.init === true) problems.push('init: true would put docker-init in front of the coordinator as PID 1');

  // Only 2048 published; no host networking; no extra exposed ports.
  const ports = svc.ports ?? [];
  const containerPorts = ports.map((p) => (typeof p === 'object'
    ? String(p.target) : interpolate(p, env).split(':').pop().replace(/\/tcp$/, '')));
  if (JSON.stringify(containerPorts) !== '["2048"]') problems.push(`published ports must be only 2048, are ${JSON.stringify(containerPorts)}`);
  if (svc.expose?.length) problems.push(`expose lists ${JSON.stringify(svc.expose)}`);
  if (svc.network_mode !== undefined) problems.push(`network_mode: ${svc.network_mode} (host would expose the child ports)`);

  // The children listen on every address of the container: the service is on networks of
  // its own only, each a bridge with inter-container traffic off, so that no other
  // container reaches the child ports.
  const svcNetworks = Array.isArray(svc.networks) ? svc.networks : Object.keys(svc.networks ?? {});
  if (svcNetworks.length === 0) problems.push('the service is on the default network (inter-container traffic on)');
  for (const name of svcNetworks) {
    const net = doc.networks?.[name];
    if (!net) { problems.push(`network ${name} is not defined`); continue; }
    if (net.external) problems.push(`network ${name} is external: its settings are not checked here`);
    if ((net.driver ?? 'bridge') !== 'bridge') problems.push(`network ${name} is not a bridge`);
    const icc = String(net.driver_opts?.['com.docker.network.bridge.enable_icc'] ?? 'true');
    if (icc !== 'false') problems.push(`network ${name} allows inter-container traffic (enable_icc ${icc})`);
  }

  // auth_profiles mounted read-only.
  const mounts = (svc.volumes ?? []).map((v) => (typeof v === 'object'
    ? { target: v.target, ro: v.read_only === true }
    : (() => { const parts = interpolate(v, env).split(':'); return { target: parts[1], ro: (parts[2] ?? '').split(',').includes('ro') }; })()));
  const profiles = mounts.filter((m) => m.target === '/app/auth_profiles');
  if (profiles.length !== 1) problems.push('no mount at /app/auth_profiles');
  else if (!profiles[0].ro) problems.push('the /app/auth_profiles mount is not read-only');

  // The env file is handed to the container; the image is built from docker/Dockerfile.
  if (![].concat(svc.env_file ?? []).some((f) => (typeof f === 'string' ? f : f.path) === '.env.docker')) {
    problems.push('the service does not use env_file .env.docker');
  }
  if (svc.build?.context !== '..' || svc.build?.dockerfile !== 'docker/Dockerfile') problems.push('build must use context .. and docker/Dockerfile');
  for (const arg of ['AISTUDIO_REPO', 'AISTUDIO_REF']) {
    if (!(arg in (svc.build?.args ?? {}))) problems.push(`build arg ${arg} is not passed`);
  }

  // Every variable documented; every ${VAR} of the compose file is in .env.docker.
  const documented = new Set();
  for (const v of envVars) {
    if (!v.name) { problems.push(`.env.docker: not a variable or comment: ${v.value}`); continue; }
    if (v.doc.length < 15) problems.push(`.env.docker: ${v.name} has no comment describing it`);
    if (documented.has(v.name)) problems.push(`.env.docker: ${v.name} appears twice`);
    documented.add(v.name);
  }
  for (const m of composeText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (!documented.has(m[1])) problems.push(`docker-compose.yml uses \${${m[1]}} which .env.docker does not document`);
  }
  for (const name of FLAG_ENV_VARS) {
    if (!documented.has(name)) problems.push(`.env.docker does not document ${name}`);
  }
  return { problems, documented };
}

const composeText = fs.readFileSync(COMPOSE, 'utf8');
const envText = fs.readFileSync(ENV_FILE, 'utf8');

test('docker-compose.yml and .env.docker pass every check', () => {
  assert.deepEqual(checkCompose(composeText, envText).problems, []);
});

test('every variable the entrypoint reads is documented in .env.docker', () => {
  const { documented } = checkCompose(composeText, envText);
  const script = fs.readFileSync(ENTRYPOINT, 'utf8').split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
  const read = new Set([...script.matchAll(/\$\{([A-Z][A-Z0-9_]*)(?::-[^}]*)?\}|\$([A-Z][A-Z0-9_]*)\b/g)]
    .map((m) => m[1] ?? m[2]).filter((n) => !['PATH'].includes(n)));
  assert.ok(read.has('PROFILE_BACKEND') && read.has('AUTH_PROFILE_S3_BUCKET'), 'scan found nothing');
  for (const name of read) assert.ok(documented.has(name), `${name} (read by entrypoint.sh) is not in .env.docker`);
});

test('compose defaults agree with .env.docker and the Dockerfile', () => {
  const doc = YAML.parse(composeText);
  const svc = doc.services.coordinator;
  const env = Object.fromEntries(parseEnvFile(envText).filter((v) => v.active && v.name).map((v) => [v.name, v.value]));
  assert.equal(interpolate(svc.build.args.AISTUDIO_REF, {}), env.AISTUDIO_REF);
  assert.equal(interpolate(svc.build.args.AISTUDIO_REPO, {}), env.AISTUDIO_REPO);
  const dockerfile = fs.readFileSync(path.join(REPO, 'docker', 'Dockerfile'), 'utf8');
  assert.ok(dockerfile.includes(`ARG AISTUDIO_REF=${env.AISTUDIO_REF}\n`), 'Dockerfile and .env.docker pin different refs');
  assert.equal(env.PROFILE_BACKEND, 'local');
  assert.equal(env.HOST_BIND, '127.0.0.1', 'publish on loopback unless the operator opts in');
});

// ---- the checks can fail ----
const expectProblem = (compose, envT, re) => {
  const { problems } = checkCompose(compose, envT);
  assert.ok(problems.some((p) => re.test(p)), `expected a problem matching ${re}, got ${JSON.stringify(problems)}`);
};
const mutate = (text, from, to) => { assert.ok(text.includes(from), `anchor not found: ${from}`); return text.replace(from, to); };

test('rejects a writable profile mount', () => {
  expectProblem(mutate(composeText, ':/app/auth_profiles:ro"', ':/app/auth_profiles"'), envText, /not read-only/);
});

test('rejects a short stop grace period, from the file or the env', () => {
  expectProblem(mutate(composeText, '${STOP_GRACE_PERIOD:-60s}', '${STOP_GRACE_PERIOD:-15s}'), envText, /built-in default/);
  expectProblem(mutate(composeText, '${STOP_GRACE_PERIOD:-60s}', '${STOP_GRACE_PERIOD:-30s}'), envText, /built-in default 30s/);
  expectProblem(composeText, mutate(envText, 'STOP_GRACE_PERIOD=60s', 'STOP_GRACE_PERIOD=40s'), /stop_grace_period 40s/);
});

test('rejects child ports, host networking and a missing health check', () => {
  expectProblem(mutate(composeText, '      - "${HOST_BIND:-127.0.0.1}:${HOST_PORT:-2048}:2048"',
    '      - "${HOST_BIND:-127.0.0.1}:${HOST_PORT:-2048}:2048"\n      - "127.0.0.1:9222:9222"'), envText, /only 2048/);
  expectProblem(mutate(composeText, '    init: false', '    init: false\n    network_mode: host'), envText, /network_mode: host/);
  expectProblem(mutate(composeText, 'http://127.0.0.1:2048/ready', 'http://127.0.0.1:2048/live'), envText, /health check on \/ready/);
});

test('rejects a network that lets other containers reach the children', () => {
  expectProblem(mutate(composeText, 'com.docker.network.bridge.enable_icc: "false"', 'com.docker.network.bridge.enable_icc: "true"'), envText, /inter-container traffic \(enable_icc true\)/);
  expectProblem(mutate(composeText, '    networks:\n      - coordinator\n', ''), envText, /default network/);
  expectProblem(mutate(composeText, '      com.docker.network.bridge.enable_icc: "false"\n', ''), envText, /enable_icc true/);
  expectProblem(mutate(composeText, '    driver: bridge\n', '    driver: overlay\n'), envText, /not a bridge/);
});

test('the service is on the coordinator network only, and it has inter-container traffic off', () => {
  const doc = YAML.parse(composeText);
  assert.deepEqual(doc.services.coordinator.networks, ['coordinator']);
  assert.equal(doc.networks.coordinator.driver_opts['com.docker.network.bridge.enable_icc'], 'false');
});

test('rejects an undocumented variable', () => {
  expectProblem(composeText, `${envText}\nNEW_KNOB=1\n`, /NEW_KNOB has no comment/);
  expectProblem(mutate(composeText, 'shm_size: ${SHM_SIZE:-1g}', 'shm_size: ${SHM_BYTES:-1g}'), envText, /SHM_BYTES/);
});
