#!/usr/bin/env python3
"""Checks deploy/systemd/coordinator.service and deploy/systemd/coordinator.env.

Run from the repository root:  python3 tests/deploy/test_systemd.py
Needs Python 3 (standard library); `systemd-analyze` (Debian package systemd) for the
verify tests, which are skipped with a message when it is missing.

1. The unit, parsed as systemd parses it (sections, repeated keys, `\\` continuations), has
   the settings the deployment relies on: Type=notify, NotifyAccess=main, WatchdogSec=30,
   Restart=on-failure, KillMode=mixed, a TimeoutStopSec above the coordinator's shutdown
   grace + child stop timeout, the optional EnvironmentFile, User=coordinator, hardening that
   the browser children tolerate (and none of the options that break them), LimitNOFILE,
   WorkingDirectory, ExecStart/ExecReload.
2. coordinator.env: every variable is documented by a comment above it, every environment
   variable of `coordinator --help` is there, systemd's own variables are not set.
3. `systemd-analyze verify` on a copy of the unit whose ExecStart names the built binary
   (COORDINATOR_BINARY or COORDINATOR_BIN, default build/coordinator; /bin/true when it is
   not built), because verify fails on a missing executable. It must exit 0 and print
   nothing about the coordinator's unit. Accepted (ignored) output: lines about OTHER unit
   files of the host that verify happens to load (they start with another path); there are
   none on Debian 12 today. `User=coordinator` need not exist: verify does not resolve users.
4. The same with deploy/terraform's binary-mode drop-in (coordinator.service.d/
   10-terraform.conf, taken from deploy/terraform/main.tf) applied on top, so that the unit
   as shipped and as deploy/terraform runs it both verify.
5. The host firewall of the children (coordinator-children.nft, coordinator-firewall.service):
   an inet (IPv4 + IPv6) input chain that accepts loopback first, then drops the three child
   ranges; the ranges cover the coordinator's layout for 100 children (from
   `coordinator --print-config` when built) and never its own port; `nft -c` accepts the file
   (skipped without nft; a broken copy is refused); the unit loads it before the
   coordinator and verifies; deploy/terraform's boot script writes the same rules and the same
   unit. `nft -c` only checks: nothing is loaded into the host running the tests.
"""
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "coordinator.service"
FIREWALL_UNIT = REPO / "deploy" / "systemd" / "coordinator-firewall.service"
NFT_FILE = REPO / "deploy" / "systemd" / "coordinator-children.nft"
ENV_FILE = REPO / "deploy" / "systemd" / "coordinator.env"
TERRAFORM_MAIN = REPO / "deploy" / "terraform" / "main.tf"
BINARY = os.environ.get("COORDINATOR_BINARY") or os.environ.get("COORDINATOR_BIN") or \
    str(REPO / "build" / "coordinator")

# Defaults of the coordinator, used when the binary is not built.
DEFAULT_SHUTDOWN_GRACE = 10.0
DEFAULT_CHILD_STOP_TIMEOUT = 30.0
DEFAULT_LAYOUT = {"coordinator-port": 2048, "base-api-port": 3100, "base-stream-port": 3200,
                  "base-camoufox-port": 9222, "port-step": 1}
# Children per replica the firewall must cover (the default layout's limit).
FIREWALL_CHILDREN = 100


def parse_unit(text):
    """systemd unit text -> {section: {key: [values in order]}}."""
    sections = {}
    current = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\") and i < len(lines):  # continuation
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"not a unit file line: {line!r}")
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def parse_seconds(value):
    """A systemd time span ("45", "45s", "1min 30s", "500ms") in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600,
             "hr": 3600}
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", value):
        total += float(number) * units[unit]
    return total


def print_config():
    """{key: value} of `coordinator --print-config` (TOML lines), or {} when not built."""
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        return {}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("COORDINATOR_") and not k.startswith("BASE_") and k != "PORT_STEP"}
    r = subprocess.run([BINARY, "--print-config"], capture_output=True, text=True, env=env,
                       timeout=10, stdin=subprocess.DEVNULL)
    values = {}
    for line in r.stdout.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def binary_defaults():
    """(shutdown-grace, child-stop-timeout) from `coordinator --print-config`, or the
    documented defaults when the binary is missing."""
    values = print_config()
    return (float(values.get("shutdown-grace", DEFAULT_SHUTDOWN_GRACE)),
            float(values.get("child-stop-timeout", DEFAULT_CHILD_STOP_TIMEOUT)))


def layout():
    """The coordinator's default port layout, from --print-config or the documented one."""
    values = print_config()
    return {k: int(float(values.get(k, v))) for k, v in DEFAULT_LAYOUT.items()}


def terraform_extra_stop_seconds(text):
    """N of `stop_timeout = var.shutdown_grace_seconds + N` in deploy/terraform/main.tf."""
    m = re.search(r"stop_timeout\s*=\s*var\.shutdown_grace_seconds\s*\+\s*(\d+)", text)
    return int(m.group(1)) if m else None


def help_env_names():
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        return None
    r = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    return sorted(set(re.findall(r"Env:\s*([A-Za-z_][A-Za-z0-9_]*)", r.stdout + r.stderr)))


class UnitSettingsTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.unit = parse_unit(UNIT.read_text())
        cls.service = cls.unit.get("Service", {})

    def one(self, key, section="Service"):
        values = self.unit.get(section, {}).get(key)
        self.assertTrue(values, f"[{section}] {key}= missing")
        self.assertEqual(len(values), 1, f"[{section}] {key}= set more than once: {values}")
        return values[0]

    def test_sections(self):
        self.assertEqual(sorted(self.unit), ["Install", "Service", "Unit"])
        self.assertEqual(self.one("WantedBy", "Install"), "multi-user.target")
        self.assertIn("network-online.target", " ".join(self.unit["Unit"].get("After", [])))
        self.assertIn("network-online.target", " ".join(self.unit["Unit"].get("Wants", [])))

    def test_notify_and_watchdog(self):
        self.assertEqual(self.one("Type"), "notify")
        self.assertEqual(self.one("NotifyAccess"), "main")
        self.assertEqual(parse_seconds(self.one("WatchdogSec")), 30)

    def test_restart_and_stop(self):
        self.assertEqual(self.one("Restart"), "on-failure")
        self.assertEqual(self.one("KillMode"), "mixed")
        self.assertIn(self.one("KillSignal"), ("SIGTERM", "TERM", "15"))
        grace, child_stop = binary_defaults()
        stop = parse_seconds(self.one("TimeoutStopSec"))
        self.assertGreaterEqual(stop, grace + child_stop + 10,
                                f"TimeoutStopSec={stop} must exceed --shutdown-grace ({grace}) + "
                                f"--child-stop-timeout ({child_stop}) with a margin")
        # A configuration error (exit 2) is not retried in a loop.
        self.assertIn("2", self.one("RestartPreventExitStatus").split())

    def test_exec_lines_user_and_files(self):
        self.assertEqual(self.one("ExecStart"),
                         "/usr/local/bin/coordinator --config /etc/coordinator/coordinator.toml")
        self.assertEqual(self.one("ExecReload"), "/bin/kill -HUP $MAINPID")
        self.assertEqual(self.one("EnvironmentFile"), "-/etc/coordinator/coordinator.env")
        self.assertEqual(self.one("User"), "coordinator")
        self.assertTrue(self.one("WorkingDirectory").startswith("/"))
        self.assertEqual(self.one("LimitNOFILE"), "65536")

    def test_hardening_that_browsers_tolerate(self):
        self.assertEqual(self.one("NoNewPrivileges"), "yes")
        self.assertEqual(self.one("ProtectHome"), "read-only")
        self.assertEqual(self.one("PrivateTmp"), "yes")
        protect = self.one("ProtectSystem")
        self.assertIn(protect, ("full", "strict"))
        if protect == "strict":
            # The state and log folders must stay writable.
            writable = " ".join(self.service.get("ReadWritePaths", []) +
                                self.service.get("StateDirectory", []) +
                                self.service.get("LogsDirectory", []))
            self.assertIn("coordinator", writable)
            self.assertIn("coordinator", " ".join(self.service.get("StateDirectory", [])) +
                          " ".join(p for p in self.service.get("ReadWritePaths", [])
                                   if "/var/lib" in p))
            self.assertIn("coordinator", " ".join(self.service.get("LogsDirectory", [])) +
                          " ".join(p for p in self.service.get("ReadWritePaths", [])
                                   if "/var/log" in p))
        # Options that break Firefox/Camoufox (JIT, sandbox, many system calls).
        for key in ("MemoryDenyWriteExecute", "SystemCallFilter", "RestrictNamespaces",
                    "PrivateUsers", "PrivateDevices"):
            values = self.service.get(key, [])
            self.assertFalse([v for v in values if v not in ("no", "false", "0", "")],
                             f"{key}={values} breaks the browser children")

    def test_working_directory_is_writable_under_protect_system(self):
        wd = self.one("WorkingDirectory")
        state = ["/var/lib/" + d for v in self.service.get("StateDirectory", []) for d in v.split()]
        rw = [p.lstrip("-") for v in self.service.get("ReadWritePaths", []) for p in v.split()]
        if self.one("ProtectSystem") == "strict":
            self.assertTrue(any(wd == p or wd.startswith(p + "/") for p in state + rw),
                            f"WorkingDirectory {wd} is read-only under ProtectSystem=strict")


class EnvFileTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.lines = ENV_FILE.read_text().splitlines()

    def variables(self):
        """(line index, name, commented) of every KEY=VALUE line, active or commented out."""
        out = []
        for i, line in enumerate(self.lines):
            m = re.match(r"^(#?)([A-Za-z_][A-Za-z0-9_]*)=", line)
            if m:
                out.append((i, m.group(2), bool(m.group(1))))
        return out

    def test_syntax(self):
        for line in self.lines:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            self.assertRegex(s, r"^[A-Za-z_][A-Za-z0-9_]*=", f"not KEY=VALUE: {line!r}")
            self.assertFalse(s.startswith("export "), line)

    def test_every_variable_is_documented(self):
        variables = self.variables()
        self.assertGreater(len(variables), 10)
        for i, name, _ in variables:
            # Walk up over the other variables of the same block to its comment.
            j = i - 1
            while j >= 0 and re.match(r"^#?[A-Za-z_][A-Za-z0-9_]*=", self.lines[j]):
                j -= 1
            self.assertTrue(j >= 0 and self.lines[j].startswith("# ") and
                            len(self.lines[j]) > 4,
                            f"{name} (line {i + 1}) has no comment above it")

    def test_every_environment_variable_of_help_is_listed(self):
        names = help_env_names()
        if names is None:
            self.skipTest(f"{BINARY} not built: cannot read --help")
        listed = {name for _, name, _ in self.variables()}
        self.assertEqual([n for n in names if n not in listed], [],
                         "environment variables of --help missing from coordinator.env")

    def test_systemd_variables_are_not_set(self):
        for _, name, commented in self.variables():
            if name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                self.fail(f"{name} is set by systemd, not in the environment file")
            self.assertTrue(commented, f"{name} is set: the shipped file only documents")


class VerifyTests(unittest.TestCase):

    def setUp(self):
        self.analyze = shutil.which("systemd-analyze")
        if not self.analyze:
            self.skipTest("systemd-analyze not found (Debian package 'systemd')")
        self.tmp = tempfile.mkdtemp(prefix="coord-systemd-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.exe = BINARY if os.path.isfile(BINARY) and os.access(BINARY, os.X_OK) \
            else "/bin/true"

    def copy_unit(self):
        text = UNIT.read_text()
        text, n = re.subn(r"^ExecStart=/usr/local/bin/coordinator\b",
                          f"ExecStart={self.exe}", text, flags=re.M)
        self.assertEqual(n, 1, "ExecStart line not found")
        path = os.path.join(self.tmp, "coordinator.service")
        with open(path, "w") as f:
            f.write(text)
        return path

    def verify(self, path):
        r = subprocess.run([self.analyze, "verify", path], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        out = (r.stdout + r.stderr).strip()
        ours = [ln for ln in out.splitlines()
                if "coordinator.service" in ln or ln.startswith(self.tmp)]
        self.assertEqual(r.returncode, 0, f"systemd-analyze verify {path}:\n{out}")
        self.assertEqual(ours, [], f"systemd-analyze verify {path} complains:\n{out}")
        return out

    def test_verify_unit(self):
        out = self.verify(self.copy_unit())
        if out:
            print(f"\n[test_systemd] accepted output of systemd-analyze verify:\n{out}")

    def test_verify_unit_with_the_terraform_drop_in(self):
        text = TERRAFORM_MAIN.read_text() if TERRAFORM_MAIN.is_file() else ""
        m = re.search(r"10-terraform\.conf <<'?DROPIN'?\n(.*?)\n\s*DROPIN\n", text, re.S)
        if not m:
            self.skipTest("no 10-terraform.conf drop-in found in deploy/terraform/main.tf")
        drop_in = textwrap.dedent(m.group(1))
        # Shell expansions of the user data script, with the defaults (grace 10 s).
        extra = terraform_extra_stop_seconds(text)
        self.assertIsNotNone(extra, "stop_timeout = var.shutdown_grace_seconds + N not found")
        grace, _ = binary_defaults()
        drop_in = drop_in.replace("$((STOP_TIMEOUT + 15))", str(int(grace) + extra + 15))
        self.assertNotIn("$", drop_in.replace("$MAINPID", ""), f"unexpanded: {drop_in}")
        entrypoint = REPO / "docker" / "entrypoint.sh"
        drop_in = drop_in.replace("/usr/local/bin/coordinator-entrypoint", str(entrypoint))
        self.assertIn("[Service]", drop_in)
        unit = self.copy_unit()
        d = os.path.join(self.tmp, "coordinator.service.d")
        os.makedirs(d)
        with open(os.path.join(d, "10-terraform.conf"), "w") as f:
            f.write(drop_in)
        # The drop-in keeps the unit's essentials.
        merged = parse_unit(Path(unit).read_text() + "\n" + drop_in)["Service"]
        self.assertEqual(merged["ExecStart"][-2:], ["", str(entrypoint)])
        self.assertEqual(merged["Type"], ["notify"])
        self.assertEqual(merged["KillMode"][-1], "mixed")
        grace, child_stop = binary_defaults()
        self.assertGreaterEqual(parse_seconds(merged["TimeoutStopSec"][-1]),
                                grace + child_stop + 10)
        self.verify(unit)



def parse_port_set(text):
    """A comma-separated list of ports and ranges ("3100-3199, 9222") -> [(lo, hi)]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise ValueError(f"not a port or range: {part!r}")
        lo = int(m.group(1))
        out.append((lo, int(m.group(2) or lo)))
    return out


def nft_rules(text):
    """The firewall file, reduced to what the checks need:
    {"defines": {name: text}, "tables": [...], "hooks": [...], "rules": [...]}
    where rules are the statements of the input chain, in order, comments dropped."""
    lines = [re.sub(r"#.*", "", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    defines = {}
    for ln in lines:
        m = re.fullmatch(r"define\s+(\w+)\s*=\s*(.+)", ln)
        if m:
            defines[m.group(1)] = m.group(2).strip()
    tables = [ln for ln in lines if ln.startswith("table ")]
    hooks = [ln for ln in lines if ln.startswith("type filter hook")]
    in_chain = False
    rules = []
    for ln in lines:
        if ln.startswith("chain input"):
            in_chain = True
            continue
        if in_chain:
            if ln == "}":
                break
            if not ln.startswith("type "):
                rules.append(re.sub(r"\s+", " ", ln))
    return {"defines": defines, "tables": tables, "hooks": hooks, "rules": rules}


def dropped_ranges(parsed):
    """[(lo, hi)] that the drop rule covers (after expanding $defines), or raises."""
    drops = [r for r in parsed["rules"] if r.endswith(" drop")]
    if len(drops) != 1:
        raise AssertionError(f"expected one drop rule, found {drops}")
    m = re.fullmatch(r"tcp dport \{(.+)\}( counter)? drop", drops[0])
    if not m:
        raise AssertionError(f"drop rule is not `tcp dport {{...}} drop`: {drops[0]}")
    out = []
    for item in m.group(1).split(","):
        item = item.strip()
        if item.startswith("$"):
            out.extend(parse_port_set(parsed["defines"][item[1:]]))
        else:
            out.extend(parse_port_set(item))
    return out


def firewall_problems(text, lay):
    """Every reason why the ruleset would not keep the children private."""
    problems = []
    parsed = nft_rules(text)
    if not parsed["tables"] or any(not tb.startswith("table inet ") for tb in parsed["tables"]):
        problems.append(f"tables must be `inet` (IPv4 and IPv6): {parsed['tables']}")
    if len(parsed["hooks"]) != 1 or "hook input" not in parsed["hooks"][0]:
        problems.append(f"expected one chain on the input hook: {parsed['hooks']}")
    elif "policy accept" not in parsed["hooks"][0]:
        problems.append("the chain's policy must stay accept (it only closes the child ports)")
    rules = parsed["rules"]
    lo_index = next((i for i, r in enumerate(rules) if r in ('iifname "lo" accept', 'iif "lo" accept', "iif lo accept")), None)
    drop_index = next((i for i, r in enumerate(rules) if r.endswith(" drop")), None)
    if lo_index is None:
        problems.append("no loopback accept rule: the coordinator could not reach its children")
    if drop_index is None:
        problems.append("no drop rule")
    if lo_index is not None and drop_index is not None and lo_index > drop_index:
        problems.append("the loopback accept comes after the drop")
    if any(r.endswith(" accept") and i != lo_index for i, r in enumerate(rules)):
        problems.append(f"accept rules other than loopback: {rules}")
    try:
        ranges = dropped_ranges(parsed)
    except (AssertionError, KeyError, ValueError) as e:
        return problems + [f"drop rule unreadable: {e}"]
    covered = lambda port: any(lo <= port <= hi for lo, hi in ranges)
    step = lay["port-step"]
    for key in ("base-api-port", "base-stream-port", "base-camoufox-port"):
        missing = [lay[key] + i * step for i in range(FIREWALL_CHILDREN) if not covered(lay[key] + i * step)]
        if missing:
            problems.append(f"{key}: child ports not covered, e.g. {missing[:3]}")
    for port in (lay["coordinator-port"], 22):
        if covered(port):
            problems.append(f"the drop covers port {port}")
    return problems


def terraform_heredoc(text, marker):
    """The body of the user data heredoc `<<'MARKER'` in main.tf, dedented as Terraform's
    <<-EOT does for the whole script (4 spaces)."""
    m = re.search(r"<<'" + marker + r"'\n(.*?)\n\s*" + marker + r"\n", text, re.S)
    if not m:
        return None
    return "\n".join(ln[4:] if ln.startswith("    ") else ln for ln in m.group(1).split("\n"))


class FirewallTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.text = NFT_FILE.read_text()
        cls.layout = layout()

    def test_ruleset_keeps_the_children_private(self):
        self.assertEqual(firewall_problems(self.text, self.layout), [])
        parsed = nft_rules(self.text)
        self.assertEqual(sorted(parsed["defines"]),
                         ["child_api_ports", "child_debug_ports", "child_stream_ports"])

    def test_checks_can_fail(self):
        def broken(a, b):
            self.assertIn(a, self.text)
            return firewall_problems(self.text.replace(a, b), self.layout)
        self.assertTrue(any("not covered" in p for p in broken("3100-3199", "3100-3150")))
        self.assertTrue(any("port 2048" in p for p in broken("3100-3199", "2000-3199")))
        self.assertTrue(any("inet" in p for p in broken("table inet coordinator_children {", "table ip coordinator_children {")))
        self.assertTrue(any("loopback" in p for p in broken('iifname "lo" accept', "")))
        self.assertTrue(any("policy" in p for p in broken("policy accept", "policy drop")))

    def nft(self):
        nft = shutil.which("nft") or ("/usr/sbin/nft" if os.access("/usr/sbin/nft", os.X_OK) else None)
        if not nft:
            self.skipTest("nft not found (Debian package 'nftables')")
        return nft

    def nft_check(self, text):
        d = tempfile.mkdtemp(prefix="coord-nft-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "children.nft")
        with open(path, "w") as f:
            f.write(text)
        # -c: parse and check only, never load into the host's ruleset.
        return subprocess.run([self.nft(), "-c", "-f", path], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)

    def test_nft_accepts_the_file(self):
        r = self.nft_check(self.text)
        if r.returncode != 0 and re.search(r"Operation not permitted|Permission denied", r.stderr):
            self.skipTest(f"nft -c needs netlink access here: {r.stderr.strip()}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bad = self.nft_check(self.text.replace("define child_api_ports = 3100-3199",
                                               "define child_api_ports = 3100-31x9"))
        self.assertNotEqual(bad.returncode, 0, "nft -c accepted a broken file: the check proves nothing")

    def test_unit_loads_the_file_before_the_coordinator(self):
        unit = parse_unit(FIREWALL_UNIT.read_text())
        svc, u, inst = unit["Service"], unit["Unit"], unit["Install"]
        self.assertEqual(svc["Type"], ["oneshot"])
        self.assertEqual(svc["RemainAfterExit"], ["yes"])
        self.assertEqual(svc["ExecStart"], ["/usr/sbin/nft -f /etc/coordinator/children.nft"])
        self.assertIn("coordinator.service", " ".join(u.get("Before", [])).split())
        self.assertIn("coordinator.service", " ".join(inst.get("WantedBy", [])).split())
        self.assertIn("multi-user.target", " ".join(inst.get("WantedBy", [])).split())
        # Debian's nftables.service flushes the ruleset when it restarts: load again after it.
        self.assertIn("nftables.service", " ".join(u.get("PartOf", [])).split())
        self.assertIn("nftables.service", " ".join(u.get("After", [])).split())
        table = re.search(r"^table inet (\w+) \{", self.text, re.M).group(1)
        self.assertEqual(svc["ExecStop"], [f"/usr/sbin/nft delete table inet {table}"])

    def test_verify_firewall_unit(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not found (Debian package 'systemd')")
        d = tempfile.mkdtemp(prefix="coord-systemd-")
        self.addCleanup(shutil.rmtree, d, True)
        text = FIREWALL_UNIT.read_text()
        if not os.access("/usr/sbin/nft", os.X_OK):
            text = text.replace("/usr/sbin/nft", "/bin/true")  # verify needs the executable
        path = os.path.join(d, "coordinator-firewall.service")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        out = (r.stdout + r.stderr).strip()
        ours = [ln for ln in out.splitlines() if "coordinator-firewall" in ln or ln.startswith(d)]
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(ours, [], out)

    def test_terraform_writes_the_same_rules_and_unit(self):
        text = TERRAFORM_MAIN.read_text()
        rules = terraform_heredoc(text, "NFT")
        unit = terraform_heredoc(text, "UNIT")
        self.assertIsNotNone(rules, "no <<'NFT' heredoc in deploy/terraform/main.tf")
        shipped, written = nft_rules(self.text), nft_rules(rules)
        self.assertEqual(written["tables"], shipped["tables"])
        self.assertEqual(written["hooks"], shipped["hooks"])
        self.assertEqual(written["rules"], shipped["rules"])
        self.assertEqual(
            re.findall(r"^define (\w+) = \$\{local\.child_port_ranges\.(\w+)\}$", rules, re.M),
            [("child_api_ports", "api"), ("child_stream_ports", "stream"), ("child_debug_ports", "debug")])
        # The firewall unit: main.tf has several <<'UNIT' heredocs; find the firewall's.
        bodies = [textwrap.dedent(b) for b in re.findall(r"coordinator-firewall\.service <<'UNIT'\n(.*?)\n\s*UNIT\n", text, re.S)]
        self.assertEqual(len(bodies), 1, "the boot script must write coordinator-firewall.service once")
        self.assertEqual(parse_unit(bodies[0]), parse_unit(FIREWALL_UNIT.read_text()))
        # Installed before the coordinator starts, in binary mode.
        binary = text[text.index("install_binary_mode() {"):]
        self.assertLess(binary.index("install_children_firewall"),
                        binary.index("systemctl enable --now coordinator.service"))
        m = re.search(r"apt-get install -y(?:[^\n]*\\\n)*[^\n]*\n", binary)
        self.assertTrue(m and re.search(r"\bnftables\b", m.group(0)),
                        "binary mode must apt-get install nftables")


if __name__ == "__main__":
    unittest.main(verbosity=2)
