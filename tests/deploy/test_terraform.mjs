// Static checks of deploy/terraform (Terraform itself is not installed): every
// .tf file is parsed with @cdktf/hcl2json (HashiCorp's HCL parser compiled to
// WebAssembly) and the parsed configuration is checked.
//
// Run from the repository root (after `npm ci --prefix tests/deploy`):
//   node --test tests/deploy/test_terraform.mjs
// The boot script check also needs `shellcheck` on PATH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse } from '@cdktf/hcl2json';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TF_DIR = path.join(REPO, 'deploy', 'terraform');
const COORDINATOR_PORT = 2048;
// Child ports: API 3100+i, stream 3200+i, Camoufox debug 9222+i (i < 100 covered).
const CHILD_RANGES = [[3100, 3299], [9222, 9321]];
// Children per replica the binary-mode host firewall must cover.
const FIREWALL_CHILDREN = 100;

// The coordinator's default layout, from `coordinator --print-config` when it is built
// (COORDINATOR_BINARY, as ctest sets it), else the documented defaults.
function coordinatorLayout() {
  const layout = { 'coordinator-port': 2048, 'base-api-port': 3100, 'base-stream-port': 3200,
    'base-camoufox-port': 9222, 'port-step': 1 };
  const bin = process.env.COORDINATOR_BINARY;
  if (bin && fs.existsSync(bin)) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) =>
      !k.startsWith('COORDINATOR_') && !k.startsWith('BASE_') && k !== 'PORT_STEP'));
    const r = spawnSync(bin, ['--print-config'], { encoding: 'utf8', env, timeout: 10000 });
    for (const line of (r.stdout ?? '').split('\n')) {
      const m = /^([a-z-]+)\s*=\s*"?([0-9.]+)"?\s*$/.exec(line);
      if (m && m[1] in layout) layout[m[1]] = Number(m[2]);
    }
  }
  return layout;
}

function readTfSources(dir = TF_DIR) {
  const out = {};
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.tf')).sort()) {
    out[f] = fs.readFileSync(path.join(dir, f), 'utf8');
  }
  return out;
}

// Parses {file: text} and merges the top-level blocks of all files.
async function parseModule(sources) {
  const merged = { variable: {}, output: {}, locals: {}, resource: {}, data: {} };
  for (const [file, text] of Object.entries(sources)) {
    const j = await parse(file, text);
    for (const [name, blocks] of Object.entries(j.variable ?? {})) merged.variable[name] = blocks[0];
    for (const [name, blocks] of Object.entries(j.output ?? {})) merged.output[name] = blocks[0];
    for (const block of j.locals ?? []) Object.assign(merged.locals, block);
    for (const kind of ['resource', 'data']) {
      for (const [type, byName] of Object.entries(j[kind] ?? {})) {
        merged[kind][type] ??= {};
        for (const [name, blocks] of Object.entries(byName)) merged[kind][type][name] = blocks[0];
      }
    }
  }
  return merged;
}

// Resolves a literal, "${local.x}" or "${var.x}" (via its default) to a value.
function resolve(mod, value, depth = 0) {
  if (typeof value !== 'string' || depth > 5) return value;
  const m = /^\$\{(local|var)\.([A-Za-z0-9_]+)\}$/.exec(value);
  if (!m) return value;
  const next = m[1] === 'local' ? mod.locals[m[2]] : mod.variable[m[2]]?.default;
  return next === undefined ? value : resolve(mod, next, depth + 1);
}
const asNumber = (mod, v) => {
  const r = resolve(mod, v);
  return typeof r === 'number' ? r : (/^\d+$/.test(String(r)) ? Number(r) : NaN);
};

const refersTo = (value, address) =>
  JSON.stringify(value ?? null).includes(`\${${address}`);

// Every ingress rule in the module, normalised to {where, sg, from, to, protocol, sources}.
function ingressRules(mod) {
  const rules = [];
  const R = mod.resource;
  for (const [name, sg] of Object.entries(R.aws_security_group ?? {})) {
    for (const ing of [].concat(sg.ingress ?? [])) {
      rules.push({ where: `aws_security_group.${name} ingress`, sg: `aws_security_group.${name}`,
        from: ing.from_port, to: ing.to_port, protocol: ing.protocol, sources: ing });
    }
  }
  for (const [name, r] of Object.entries(R.aws_security_group_rule ?? {})) {
    if (r.type !== 'ingress') continue;
    rules.push({ where: `aws_security_group_rule.${name}`, sg: r.security_group_id,
      from: r.from_port, to: r.to_port, protocol: r.protocol, sources: r });
  }
  for (const [name, r] of Object.entries(R.aws_vpc_security_group_ingress_rule ?? {})) {
    rules.push({ where: `aws_vpc_security_group_ingress_rule.${name}`, sg: r.security_group_id,
      from: r.from_port, to: r.to_port, protocol: r.ip_protocol, sources: r });
  }
  return rules;
}

function checkModule(mod, readme) {
  const problems = [];
  const R = mod.resource;

  // Target group: HTTP on 2048, health check /ready.
  const tgs = Object.entries(R.aws_lb_target_group ?? {});
  if (tgs.length !== 1) problems.push(`expected one aws_lb_target_group, found ${tgs.length}`);
  const [tgName, tg] = tgs[0] ?? [];
  if (tg) {
    if (asNumber(mod, tg.port) !== COORDINATOR_PORT) problems.push(`target group port is ${tg.port}, not 2048`);
    if (resolve(mod, tg.protocol) !== 'HTTP') problems.push('target group protocol is not HTTP');
    const hc = [].concat(tg.health_check ?? [])[0];
    if (!hc) problems.push('target group has no health_check');
    else {
      if (resolve(mod, hc.path) !== '/ready') problems.push(`health check path is ${hc.path}, not /ready`);
      if (hc.enabled === false) problems.push('health check disabled');
      const port = resolve(mod, hc.port ?? 'traffic-port');
      if (port !== 'traffic-port' && asNumber(mod, port) !== COORDINATOR_PORT) {
        problems.push(`health check port is ${hc.port}`);
      }
      if (hc.matcher !== undefined && resolve(mod, hc.matcher) !== '200') problems.push('health check matcher is not 200');
    }
    const st = [].concat(tg.stickiness ?? [])[0];
    if (st && st.enabled !== false) problems.push('target group stickiness is enabled');
  }

  // Listeners forward to that target group; ASGs register in it with ELB health checks.
  const tgAddr = `aws_lb_target_group.${tgName}`;
  const listeners = Object.values(R.aws_lb_listener ?? {});
  if (!listeners.some((l) => refersTo(l.default_action, tgAddr))) problems.push('no listener forwards to the target group');
  const asgs = Object.entries(R.aws_autoscaling_group ?? {});
  if (asgs.length === 0) problems.push('no aws_autoscaling_group');
  for (const [n, asg] of asgs) {
    if (!refersTo(asg.target_group_arns, tgAddr)) problems.push(`ASG ${n} is not attached to the target group`);
    // /ready is for load-balancer target health; liveness (/live) is handled on the
    // instance. An ASG on ELB health would recycle replicas whose accounts are not ready.
    if (asg.health_check_type === 'ELB') problems.push(`ASG ${n} replaces instances on /ready (health_check_type ELB)`);
  }

  // The instance security group(s): those of the launch templates.
  const instanceSgs = new Set();
  for (const lt of Object.values(R.aws_launch_template ?? {})) {
    for (const ref of JSON.stringify([lt.vpc_security_group_ids, lt.network_interfaces]).matchAll(/aws_security_group\.([A-Za-z0-9_-]+)\.id/g)) {
      instanceSgs.add(`aws_security_group.${ref[1]}`);
    }
  }
  if (instanceSgs.size === 0) problems.push('no launch template names its security group');
  const lbSgs = new Set();
  for (const lb of Object.values(R.aws_lb ?? {})) {
    for (const ref of JSON.stringify(lb.security_groups ?? []).matchAll(/aws_security_group\.([A-Za-z0-9_-]+)\.id/g)) {
      lbSgs.add(`aws_security_group.${ref[1]}`);
    }
  }

  for (const rule of ingressRules(mod)) {
    const proto = String(resolve(mod, rule.protocol ?? '')).toLowerCase();
    const all = proto === '-1' || proto === 'all';
    const from = all ? 0 : asNumber(mod, rule.from);
    const to = all ? 65535 : asNumber(mod, rule.to);
    if (Number.isNaN(from) || Number.isNaN(to)) {
      problems.push(`${rule.where}: cannot resolve its ports (${rule.from}-${rule.to}) to check them`);
      continue;
    }
    for (const [lo, hi] of CHILD_RANGES) {
      if (from <= hi && to >= lo) problems.push(`${rule.where} opens child ports (${from}-${to} overlaps ${lo}-${hi})`);
    }
    // "${aws_security_group.x.id}" for rule resources, "aws_security_group.x" for inline blocks.
    const sgAddr = String(rule.sg).replace(/^\$\{(.*)\.id\}$/, '$1');
    if (instanceSgs.has(sgAddr)) {
      if (from !== COORDINATOR_PORT || to !== COORDINATOR_PORT) {
        problems.push(`${rule.where} opens ${from}-${to} on the instances; only ${COORDINATOR_PORT} is allowed`);
      }
      const src = rule.sources;
      const fromLb = [...lbSgs].some((a) => refersTo([src.referenced_security_group_id, src.source_security_group_id, src.security_groups], a));
      const cidrs = [src.cidr_ipv4, src.cidr_ipv6, src.cidr_blocks, src.ipv6_cidr_blocks, src.prefix_list_id, src.prefix_list_ids].filter((x) => x !== undefined && x !== null && !(Array.isArray(x) && x.length === 0));
      if (!fromLb || cidrs.length > 0) problems.push(`${rule.where}: the instances' ${from} must be reachable from the ALB security group only`);
    }
  }

  // Long generations: ALB idle timeout and deregistration delay.
  const lb = Object.values(R.aws_lb ?? {})[0];
  const idle = asNumber(mod, lb?.idle_timeout ?? 60);
  if (!(idle >= 120)) problems.push(`ALB idle timeout ${idle} s is too short for long generations`);
  const grace = asNumber(mod, '${var.shutdown_grace_seconds}');
  const dereg = asNumber(mod, tg?.deregistration_delay ?? 300);
  if (!(dereg > grace)) problems.push(`deregistration delay (${dereg}) must exceed the shutdown grace (${grace})`);

  // Documentation: every variable and output has a description and is in README.md.
  for (const [kind, entries] of [['variable', mod.variable], ['output', mod.output]]) {
    for (const [name, block] of Object.entries(entries)) {
      if (!block.description || block.description.length < 10) problems.push(`${kind} ${name} has no description`);
      if (!readme.includes(`\`${name}\``)) problems.push(`${kind} ${name} is not documented in deploy/terraform/README.md`);
    }
  }
  for (const [name, block] of Object.entries(mod.variable)) {
    if (!block.type) problems.push(`variable ${name} has no type`);
  }
  return problems;
}

// The host firewall's ranges as the module computes them with an empty
// coordinator_environment (the defaults of its lookup() calls), or the problems that
// keep them from being read. Mirrors main.tf's locals: child_port_bases,
// child_port_step, firewall_children and child_port_ranges.
function firewallRanges(mod) {
  const problems = [];
  const L = mod.locals;
  const lookupDefault = (expr, name) => {
    const m = /^\$\{tonumber\(lookup\(var\.coordinator_environment, "([A-Z_]+)", "(\d+)"\)\)\}$/.exec(String(expr));
    if (!m || m[1] !== name) { problems.push(`cannot read ${name} from ${JSON.stringify(expr)}`); return NaN; }
    return Number(m[2]);
  };
  const step = lookupDefault(L.child_port_step, 'PORT_STEP');
  const bases = L.child_port_bases ?? {};
  const base = {
    api: lookupDefault(bases.api, 'BASE_API_PORT'),
    stream: lookupDefault(bases.stream, 'BASE_STREAM_PORT'),
    debug: lookupDefault(bases.debug, 'BASE_CAMOUFOX_PORT'),
  };
  const children = Number(L.firewall_children);
  const formula = '${{ for kind, base in local.child_port_bases : kind => "${base}-${base + local.firewall_children * local.child_port_step - 1}" }}';
  if (L.child_port_ranges !== formula) problems.push(`child_port_ranges is not the expected expression: ${L.child_port_ranges}`);
  const ranges = Object.fromEntries(Object.entries(base).map(([k, b]) => [k, [b, b + children * step - 1]]));
  return { ranges, problems };
}

function firewallProblems(mod) {
  const { ranges, problems } = firewallRanges(mod);
  const layout = coordinatorLayout();
  const covered = (port) => Object.values(ranges).some(([lo, hi]) => lo <= port && port <= hi);
  for (const [kind, key] of [['api', 'base-api-port'], ['stream', 'base-stream-port'], ['debug', 'base-camoufox-port']]) {
    for (let i = 0; i < FIREWALL_CHILDREN; i++) {
      const port = layout[key] + i * layout['port-step'];
      if (!covered(port)) { problems.push(`firewall: ${kind} port ${port} of child ${i} is not covered`); break; }
    }
  }
  if (covered(COORDINATOR_PORT)) problems.push(`firewall: the ranges ${JSON.stringify(ranges)} cover ${COORDINATOR_PORT}`);
  // The ranges reach the instance through the boot script.
  const script = String(mod.locals.user_data_script ?? '');
  for (const [define, kind] of [['child_api_ports', 'api'], ['child_stream_ports', 'stream'], ['child_debug_ports', 'debug']]) {
    if (!script.includes(`define ${define} = \${local.child_port_ranges.${kind}}`)) problems.push(`firewall: the boot script does not define ${define} from child_port_ranges.${kind}`);
  }
  // A plan whose ranges would cover the coordinator's port is refused.
  const preconditions = Object.values(mod.resource.aws_launch_template ?? {})
    .flatMap((lt) => [].concat(lt.lifecycle ?? []).flatMap((l) => [].concat(l.precondition ?? [])));
  if (!preconditions.some((c) => /child_port_bases/.test(c.condition) && /local\.coordinator_port/.test(c.condition))) {
    problems.push('firewall: no precondition keeps the child ranges off the coordinator port');
  }
  return problems;
}

// The boot script as the instance would see it, with Terraform's interpolations
// replaced by a placeholder word.
function renderUserData(script) {
  return script
    .replace(/%\{[^}]*\}/g, '')
    .replace(/(?<!\$)\$\{[^}]*\}/g, 'TFVALUE')
    .replace(/\$\$\{/g, '${')
    .replace(/%%\{/g, '%{');
}

const sources = readTfSources();
const readme = fs.readFileSync(path.join(TF_DIR, 'README.md'), 'utf8');
const mod = await parseModule(sources);

test('every .tf file parses and the module has the expected pieces', () => {
  assert.ok(Object.keys(sources).length >= 3, 'expected several .tf files');
  for (const t of ['aws_lb', 'aws_lb_target_group', 'aws_lb_listener', 'aws_launch_template',
    'aws_autoscaling_group', 'aws_security_group', 'aws_iam_role', 'aws_iam_instance_profile']) {
    assert.ok(mod.resource[t], `missing resource type ${t}`);
  }
});

test('the module passes every check', () => {
  assert.deepEqual(checkModule(mod, readme), []);
});

test('health check /ready on port 2048', () => {
  const tg = Object.values(mod.resource.aws_lb_target_group)[0];
  assert.equal(resolve(mod, tg.port), 2048);
  assert.equal(tg.health_check[0].path, '/ready');
});

test('the instance role reads only the profile prefix', () => {
  const doc = mod.data.aws_iam_policy_document.instance;
  const statements = [].concat(doc.statement ?? []);
  const read = statements.find((s) => s.sid === 'ReadProfiles');
  assert.ok(read, 'no ReadProfiles statement');
  assert.deepEqual(read.actions, ['s3:GetObject']);
  assert.deepEqual(read.resources, ['${local.profiles_objects_arn}']);
  assert.match(mod.locals.profiles_objects_arn, /\$\{var\.profiles_bucket\}\/\$\{local\.profiles_prefix\}\/\*/);
  const actions = JSON.stringify(doc).match(/"(s3|kms|logs|ec2|iam):[A-Za-z*]+"|"\*"/g) ?? [];
  for (const a of actions) {
    assert.ok(!a.includes('*'), `wildcard action ${a}`);
    assert.ok(!/Put|Delete|Create(?!LogStream)|Encrypt/.test(a) || /logs:(CreateLogStream|PutLogEvents)/.test(a),
      `unexpected write action ${a}`);
  }
});

test('the boot script passes shellcheck', () => {
  const script = renderUserData(mod.locals.user_data_script);
  assert.match(script, /^#!\/bin\/bash\n/);
  assert.ok(!script.includes('${var.') && !script.includes('%{'), 'unrendered template left');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'userdata-'));
  const file = path.join(dir, 'user-data.sh');
  fs.writeFileSync(file, script);
  const r = spawnSync('shellcheck', ['-s', 'bash', file], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(!r.error, `shellcheck could not run (${r.error?.code}); install it: apt-get install -y shellcheck`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the binary-mode host firewall covers the child ranges and never 2048', () => {
  assert.deepEqual(firewallProblems(mod), []);
  const { ranges } = firewallRanges(mod);
  assert.deepEqual(ranges, { api: [3100, 3199], stream: [3200, 3299], debug: [9222, 9321] });
});

test('binary mode installs the firewall before the coordinator starts', () => {
  const script = mod.locals.user_data_script;
  const binary = script.slice(script.indexOf('install_binary_mode() {'));
  assert.ok(binary.indexOf('install_children_firewall') > 0, 'install_binary_mode does not call install_children_firewall');
  assert.ok(binary.indexOf('install_children_firewall') < binary.indexOf('systemctl enable --now coordinator.service'),
    'the firewall must be in place before the coordinator (and its children) start');
  assert.match(script, /nft -c -f \/etc\/coordinator\/children\.nft/);
  assert.match(script, /systemctl enable --now coordinator-firewall\.service/);
});

test('image mode runs the container on its own network with inter-container traffic off', () => {
  const script = mod.locals.user_data_script;
  const run = script.split('\n').find((l) => /docker run /.test(l));
  assert.match(run, / --network coordinator /);
  const create = script.split('\n').filter((l) => /docker network create /.test(l));
  assert.equal(create.length, 1, 'expected one docker network create');
  assert.match(create[0], /--opt com\.docker\.network\.bridge\.enable_icc=false/);
  assert.match(create[0], / coordinator$/);
  assert.ok(script.indexOf(create[0]) < script.indexOf(run), 'the network must be created before docker run');
});

test('the stop timeout leaves the children their --child-stop-timeout', () => {
  // grace + child stop timeout (30 s: the real child saves its cookies first) + margin.
  const m = /^\$\{var\.shutdown_grace_seconds \+ (\d+)\}$/.exec(mod.locals.stop_timeout);
  assert.ok(m, `stop_timeout is ${mod.locals.stop_timeout}`);
  assert.ok(Number(m[1]) >= 40, `stop_timeout gives only ${m[1]} s beyond the grace`);
});

test('the boot script restarts the service on /live, for both install modes', () => {
  const script = mod.locals.user_data_script;
  assert.match(script, /http:\/\/127\.0\.0\.1:\$port\/live/);
  const probed = [...script.matchAll(/127\.0\.0\.1:\$port(\/\w+)/g)].map((m) => m[1]);
  assert.deepEqual(probed, ['/live'], 'the liveness probe must use /live only (not /ready)');
  assert.match(script, /install_liveness coordinator-container\.service/);
  assert.match(script, /install_liveness coordinator\.service/);
});

test('the boot script publishes only 2048 and runs the container with the stop timeout', () => {
  const script = mod.locals.user_data_script;
  const runs = script.split('\n').filter((l) => /docker run /.test(l));
  assert.equal(runs.length, 1, 'expected one docker run line');
  const publishes = [...runs[0].matchAll(/ (?:-p|--publish)[ =](\S+)/g)].map((m) => m[1]);
  assert.deepEqual(publishes, ['$PORT:2048']);
  assert.match(script, /PORT='\$\{local\.coordinator_port\}'/);
  assert.match(script, /--stop-timeout \$STOP_TIMEOUT/);
  assert.match(script, /ExecStop=\/usr\/bin\/docker stop --time \$STOP_TIMEOUT coordinator/);
  assert.ok(!/--network[ =]host|--net[ =]host/.test(script), 'host networking would expose the child ports');
});

// ---- the checks can fail: broken variants of the real files are rejected ----
async function problemsAfter(file, from, to) {
  assert.ok(sources[file].includes(from), `mutation anchor not found in ${file}: ${from}`);
  const mutated = { ...sources, [file]: sources[file].replace(from, to) };
  return checkModule(await parseModule(mutated), readme);
}
const expectProblem = (problems, re) =>
  assert.ok(problems.some((p) => re.test(p)), `expected a problem matching ${re}, got ${JSON.stringify(problems)}`);

test('rejects a health check on another path', async () => {
  expectProblem(await problemsAfter('main.tf', 'path                = "/ready"', 'path                = "/health"'), /health check path/);
});

test('rejects a target group on another port', async () => {
  expectProblem(await problemsAfter('main.tf', 'coordinator_port = 2048', 'coordinator_port = 3100'), /target group port/);
});

test('rejects a rule that opens child ports', async () => {
  const extra = `
resource "aws_security_group_rule" "debug" {
  type              = "ingress"
  security_group_id = aws_security_group.alb.id
  protocol          = "tcp"
  from_port         = 9222
  to_port           = 9230
  cidr_blocks       = ["10.0.0.0/8"]
}
resource "aws_vpc_security_group_ingress_rule" "api" {
  security_group_id = aws_security_group.instance.id
  ip_protocol       = "tcp"
  from_port         = var.child_port
  to_port           = 3105
  cidr_ipv4         = "10.0.0.0/8"
}
variable "child_port" {
  description = "a child port"
  type        = number
  default     = 3100
}`;
  const problems = await problemsAfter('main.tf', 'data "aws_region" "current" {}', `data "aws_region" "current" {}\n${extra}`);
  expectProblem(problems, /aws_security_group_rule\.debug opens child ports/);
  expectProblem(problems, /aws_vpc_security_group_ingress_rule\.api opens child ports/);
});

test('rejects an all-traffic ingress, inline or not', async () => {
  const inline = await problemsAfter('main.tf',
    'description = "coordinator instances: port 2048 from the ALB only; child ports stay closed"',
    'description = "x"\n  ingress {\n    protocol    = "-1"\n    from_port   = 0\n    to_port     = 0\n    cidr_blocks = ["0.0.0.0/0"]\n  }');
  expectProblem(inline, /aws_security_group\.instance ingress opens child ports/);
  expectProblem(inline, /only 2048 is allowed/);
});

test('rejects the coordinator port opened to a CIDR instead of the ALB', async () => {
  const problems = await problemsAfter('main.tf',
    'from_port                    = local.coordinator_port\n  to_port                      = local.coordinator_port\n  referenced_security_group_id = aws_security_group.alb.id',
    'from_port                    = local.coordinator_port\n  to_port                      = local.coordinator_port\n  cidr_ipv4                    = "0.0.0.0/0"');
  expectProblem(problems, /reachable from the ALB security group only/);
});

test('rejects an ASG outside the target group or on ELB health, and a short idle timeout', async () => {
  expectProblem(await problemsAfter('main.tf', 'target_group_arns         = [aws_lb_target_group.coordinator.arn]', 'target_group_arns         = []'), /not attached to the target group/);
  expectProblem(await problemsAfter('main.tf', 'health_check_type         = "EC2"', 'health_check_type         = "ELB"'), /replaces instances on \/ready/);
  expectProblem(await problemsAfter('variables.tf', 'default     = 600\n', 'default     = 60\n'), /idle timeout/);
});

async function firewallProblemsAfter(file, from, to) {
  assert.ok(sources[file].includes(from), `mutation anchor not found in ${file}: ${from}`);
  return firewallProblems(await parseModule({ ...sources, [file]: sources[file].replace(from, to) }));
}

test('rejects firewall ranges that miss children or cover 2048, and a missing precondition', async () => {
  expectProblem(await firewallProblemsAfter('main.tf', 'firewall_children = 100', 'firewall_children = 10'), /not covered/);
  expectProblem(await firewallProblemsAfter('main.tf', '"BASE_API_PORT", "3100"', '"BASE_API_PORT", "2000"'), /cover 2048|not covered/);
  expectProblem(await firewallProblemsAfter('main.tf', 'define child_debug_ports = ${local.child_port_ranges.debug}', 'define child_debug_ports = 9222'), /child_debug_ports/);
  expectProblem(await firewallProblemsAfter('main.tf', 'alltrue([for base in values(local.child_port_bases)', 'alltrue([for base in values({})'), /no precondition/);
});

test('rejects an undocumented variable', async () => {
  const problems = await problemsAfter('variables.tf', 'variable "tags" {', 'variable "secret_knob" {\n  type = string\n}\n\nvariable "tags" {');
  expectProblem(problems, /variable secret_knob has no description/);
  expectProblem(problems, /variable secret_knob is not documented/);
});
