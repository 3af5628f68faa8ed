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
ENV_FILE = REPO / "deploy" / "systemd" / "coordinator.env"
TERRAFORM_MAIN = REPO / "deploy" / "terraform" / "main.tf"
BINARY = os.environ.get("COORDINATOR_BINARY") or os.environ.get("COORDINATOR_BIN") or \
    str(REPO / "build" / "coordinator")

# Defaults of the coordinator, used when the binary is not built.
DEFAULT_SHUTDOWN_GRACE = 10.0
DEFAULT_CHILD_STOP_TIMEOUT = 10.0


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


def binary_defaults():
    """(shutdown-grace, child-stop-timeout) from `coordinator --print-config`, or the
    documented defaults when the binary is missing."""
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        return DEFAULT_SHUTDOWN_GRACE, DEFAULT_CHILD_STOP_TIMEOUT
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    r = subprocess.run([BINARY, "--print-config"], capture_output=True, text=True, env=env,
                       timeout=10, stdin=subprocess.DEVNULL)
    values = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return (float(values.get("shutdown-grace", DEFAULT_SHUTDOWN_GRACE)),
            float(values.get("child-stop-timeout", DEFAULT_CHILD_STOP_TIMEOUT)))


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
        drop_in = drop_in.replace("$((STOP_TIMEOUT + 15))", "45")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
