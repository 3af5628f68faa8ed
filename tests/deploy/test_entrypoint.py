#!/usr/bin/env python3
"""Runs docker/entrypoint.sh outside Docker with stub `aws` and `coordinator`
executables and checks the exact arguments, environment and failure messages.

Run from the repository root:  python3 tests/deploy/test_entrypoint.py
Needs only bash and Python 3 (standard library).

With COORDINATOR_BINARY (or COORDINATOR_BIN) naming the built coordinator, one more test runs the
entrypoint (s3 backend, stub aws) in front of the real coordinator and the fake
child (tests/fixtures/fake_child), over 127.0.0.1 only.
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
IMAGE_CMD = ["--profiles", "/app/auth_profiles/active",
             "--launcher", "/opt/aistudioproxyapi/launch_camoufox.py"]

# Stub coordinator: records how it was started, then exits 0.
COORDINATOR_STUB = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    umask = os.umask(0)
    os.umask(umask)
    rec = {{"argv": sys.argv[1:], "env": dict(os.environ), "pid": os.getpid(),
           "exe": os.path.realpath(sys.argv[0]), "umask": umask}}
    with open(os.path.join(os.environ["STUB_RECORD_DIR"], "coordinator.json"), "w") as f:
        json.dump(rec, f)
    """)

# Stub aws: records each call; STUB_AWS_MODE selects the behaviour of `s3 sync`:
#   copy (default) copies the folder STUB_S3_FIXTURE into the destination,
#   fail prints an AWS-like error and exits 1, slow sleeps 30 s (for signal tests).
AWS_STUB = textwrap.dedent("""\
    #!{python}
    import json, os, shutil, sys, time
    rec_dir = os.environ["STUB_RECORD_DIR"]
    umask = os.umask(0)
    os.umask(umask)
    with open(os.path.join(rec_dir, "aws.jsonl"), "a") as f:
        f.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ),
                            "umask": umask}}) + "\\n")
    args = sys.argv[1:]
    mode = os.environ.get("STUB_AWS_MODE", "copy")
    if args[:2] != ["s3", "sync"]:
        sys.exit("aws stub: unexpected command %r" % args)
    if mode == "fail":
        print("fatal error: An error occurred (AccessDenied) when calling the "
              "ListObjectsV2 operation: Access Denied", file=sys.stderr)
        sys.exit(1)
    if mode == "slow":
        with open(os.path.join(rec_dir, "aws.started"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(30)
        sys.exit(0)
    src, dest = args[2], args[3]
    fixture = os.environ.get("STUB_S3_FIXTURE")
    if fixture:
        for root, _dirs, files in os.walk(fixture):
            rel = os.path.relpath(root, fixture)
            os.makedirs(os.path.join(dest, rel), exist_ok=True)
            for name in files:
                shutil.copyfile(os.path.join(root, name), os.path.join(dest, rel, name))
    """)


def write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


class EntrypointFixture(unittest.TestCase):
    """Temp folders, stub executables and helpers; holds no tests itself."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="entrypoint-test-"))
        self.stubs = self.tmp / "stubs"
        self.sysbin = self.tmp / "sysbin"  # only the system tools the script may use
        self.records = self.tmp / "records"
        self.cache = self.tmp / "cache"
        for d in (self.stubs, self.sysbin, self.records):
            d.mkdir()
        for tool in ("mkdir", "chmod"):
            real = shutil.which(tool, path="/usr/bin:/bin")
            self.assertIsNotNone(real, tool)
            (self.sysbin / tool).symlink_to(real)
        write_exe(self.stubs / "coordinator", COORDINATOR_STUB.format(python=sys.executable))
        write_exe(self.stubs / "aws", AWS_STUB.format(python=sys.executable))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers -------------------------------------------------------
    def fixture(self, files):
        root = self.tmp / "bucket"
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
        root.mkdir(exist_ok=True)
        return root

    def env(self, **extra):
        env = {
            "PATH": f"{self.stubs}:{self.sysbin}",
            "HOME": str(self.tmp),
            "STUB_RECORD_DIR": str(self.records),
            "AUTH_PROFILE_CACHE_DIR": str(self.cache),
        }
        env.update(extra)
        return env

    def run_ep(self, args, env, timeout=20):
        proc = subprocess.Popen([str(ENTRYPOINT), *args], env=env, umask=0o022,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=timeout)
        return proc.pid, proc.returncode, out, err

    def coordinator_record(self):
        p = self.records / "coordinator.json"
        self.assertTrue(p.exists(), "the coordinator stub was not started")
        return json.loads(p.read_text())

    def aws_calls(self):
        p = self.records / "aws.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines()]

    def assert_failed_before_coordinator(self, rc, err, *needles):
        self.assertNotEqual(rc, 0, err)
        self.assertFalse((self.records / "coordinator.json").exists(),
                         "the coordinator must not start after a failure")
        for needle in needles:
            self.assertIn(needle, err)



class EntrypointTest(EntrypointFixture):
    # ---- static --------------------------------------------------------
    def test_is_executable_bash_script(self):
        mode = ENTRYPOINT.stat().st_mode
        self.assertTrue(mode & stat.S_IXUSR, "docker/entrypoint.sh must be executable (git mode 100755)")
        self.assertTrue(ENTRYPOINT.read_text().startswith("#!/bin/bash\n"))

    # ---- local backend -------------------------------------------------
    def test_local_default_passes_arguments_and_environment_through_and_execs(self):
        env = self.env(COORDINATOR_PORT="2048", COORDINATOR_HOST="0.0.0.0",
                       COORDINATOR_PROFILES="/somewhere", COORDINATOR_LOG_DIR="/app/logs",
                       COORDINATOR_SOMETHING_NEW="x y  z", AWS_REGION="eu-west-1")
        args = IMAGE_CMD + ["--sse-heartbeat", "15", "an arg with spaces", ""]
        pid, rc, out, err = self.run_ep(args, env)
        self.assertEqual(rc, 0, err)
        rec = self.coordinator_record()
        self.assertEqual(rec["argv"], args)
        self.assertEqual(rec["pid"], pid, "the coordinator must replace the shell (exec), to be PID 1")
        self.assertEqual(rec["exe"], str((self.stubs / "coordinator").resolve()))
        for k in ("COORDINATOR_PORT", "COORDINATOR_HOST", "COORDINATOR_PROFILES",
                  "COORDINATOR_LOG_DIR", "COORDINATOR_SOMETHING_NEW", "AWS_REGION"):
            self.assertEqual(rec["env"].get(k), env[k], k)
        self.assertEqual(self.aws_calls(), [], "the local backend must not call aws")
        self.assertFalse(self.cache.exists(), "the local backend must not create the cache")

    def test_local_explicit_backend_and_coordinator_bin(self):
        other = self.tmp / "elsewhere"
        other.mkdir()
        write_exe(other / "my-coordinator", COORDINATOR_STUB.format(python=sys.executable))
        (self.stubs / "coordinator").unlink()
        env = self.env(PROFILE_BACKEND="local", COORDINATOR_BIN=str(other / "my-coordinator"))
        pid, rc, out, err = self.run_ep(["--no-headless"], env)
        self.assertEqual(rc, 0, err)
        rec = self.coordinator_record()
        self.assertEqual(rec["argv"], ["--no-headless"])
        self.assertEqual(rec["exe"], str((other / "my-coordinator").resolve()))
        self.assertEqual(rec["pid"], pid)

    def test_extra_args_are_appended_without_globbing(self):
        (self.tmp / "match-me").write_text("")
        env = self.env(EXTRA_COORDINATOR_ARGS="  --shard 2/3   --x *  ")
        _, rc, _, err = self.run_ep(IMAGE_CMD, env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.coordinator_record()["argv"], IMAGE_CMD + ["--shard", "2/3", "--x", "*"])

    def test_missing_coordinator_is_a_clear_error(self):
        (self.stubs / "coordinator").unlink()
        _, rc, _, err = self.run_ep(IMAGE_CMD, self.env())
        self.assertEqual(rc, 69)
        self.assertIn("coordinator executable was not found on PATH", err)
        self.assertIn("COORDINATOR_BIN", err)

    def test_bad_coordinator_bin_is_a_clear_error(self):
        _, rc, _, err = self.run_ep(IMAGE_CMD, self.env(COORDINATOR_BIN=str(self.tmp / "nope")))
        self.assertEqual(rc, 69)
        self.assertIn(f"COORDINATOR_BIN={self.tmp / 'nope'} is not an executable file", err)

    def test_unknown_backend_fails(self):
        _, rc, _, err = self.run_ep(IMAGE_CMD, self.env(PROFILE_BACKEND="gcs"))
        self.assertEqual(rc, 64)
        self.assert_failed_before_coordinator(rc, err, "unknown PROFILE_BACKEND 'gcs'")
        self.assertEqual(self.aws_calls(), [])

    # ---- s3 backend ----------------------------------------------------
    def expected_sync(self, source, endpoint=None):
        argv = ["s3", "sync", source, f"{self.cache}/",
                "--exclude", "*", "--include", "active/*.json", "--include", "key.txt",
                "--delete", "--only-show-errors", "--no-progress"]
        if endpoint:
            argv += ["--endpoint-url", endpoint]
        return argv

    def test_s3_with_key_file(self):
        bucket = self.fixture({"active/a@example.com.json": '{"cookies": []}',
                               "active/b.json": "{}", "key.txt": "sk-1\n"})
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="my-bucket",
                       AUTH_PROFILE_S3_PREFIX="coordinator/prod", STUB_S3_FIXTURE=str(bucket),
                       AWS_REGION="us-east-2", COORDINATOR_PORT="2048", COORDINATOR_SHARD="1/2")
        args = IMAGE_CMD + ["--api-keys-file", "/app/auth_profiles/key.txt", "--sse-heartbeat", "15"]
        pid, rc, out, err = self.run_ep(args, env)
        self.assertEqual(rc, 0, err)
        calls = self.aws_calls()
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0]["argv"], self.expected_sync("s3://my-bucket/coordinator/prod/"))
        self.assertEqual(calls[0]["env"]["AWS_REGION"], "us-east-2")
        self.assertEqual(calls[0]["umask"], 0o077, "profiles hold cookies: the sync must run with umask 077")
        rec = self.coordinator_record()
        self.assertEqual(rec["argv"], [
            "--profiles", f"{self.cache}/active", "--api-keys-file", f"{self.cache}/key.txt",
            "--launcher", "/opt/aistudioproxyapi/launch_camoufox.py", "--sse-heartbeat", "15"])
        self.assertEqual(rec["pid"], pid)
        self.assertEqual(rec["umask"], 0o022, "the coordinator must get the caller's umask back")
        for k in ("COORDINATOR_PORT", "COORDINATOR_SHARD", "AWS_REGION", "AUTH_PROFILE_S3_BUCKET"):
            self.assertEqual(rec["env"].get(k), env[k], k)
        self.assertEqual(stat.S_IMODE(self.cache.stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE((self.cache / "active" / "b.json").stat().st_mode), 0o600)
        self.assertIn("synced 2 profile(s); key.txt: found", err)
        self.assertNotIn("sk-1", err + out)
        self.assertNotIn("cookies", err + out)

    def test_s3_without_key_file_keeps_callers_keys_flag(self):
        bucket = self.fixture({"active/a.json": "{}"})
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b",
                       AUTH_PROFILE_S3_PREFIX="/p/q/", STUB_S3_FIXTURE=str(bucket))
        args = ["--profiles=/app/auth_profiles/active", "--api-keys-file=/run/secrets/keys",
                "--launcher", "/l.py", "--profiles", "/x"]
        _, rc, _, err = self.run_ep(args, env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.aws_calls()[0]["argv"][2], "s3://b/p/q/")
        self.assertEqual(self.coordinator_record()["argv"], [
            "--profiles", f"{self.cache}/active",
            "--api-keys-file=/run/secrets/keys", "--launcher", "/l.py"])
        self.assertIn("key.txt: not found", err)

    def test_s3_empty_prefix_and_endpoint_url(self):
        bucket = self.fixture({"active/a.json": "{}"})
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b",
                       AUTH_PROFILE_S3_ENDPOINT_URL="http://127.0.0.1:9000",
                       STUB_S3_FIXTURE=str(bucket), EXTRA_COORDINATOR_ARGS="--shard 1/2")
        _, rc, _, err = self.run_ep([], env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.aws_calls()[0]["argv"],
                         self.expected_sync("s3://b/", endpoint="http://127.0.0.1:9000"))
        self.assertEqual(self.coordinator_record()["argv"],
                         ["--profiles", f"{self.cache}/active", "--shard", "1/2"])

    def test_s3_bucket_unset(self):
        for value in (None, ""):
            env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_PREFIX="p")
            if value is not None:
                env["AUTH_PROFILE_S3_BUCKET"] = value
            _, rc, _, err = self.run_ep(IMAGE_CMD, env)
            self.assertEqual(rc, 64)
            self.assert_failed_before_coordinator(
                rc, err, "PROFILE_BACKEND=s3 but AUTH_PROFILE_S3_BUCKET is not set")
            self.assertEqual(self.aws_calls(), [])

    def test_s3_bucket_given_as_url(self):
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="s3://b/p")
        _, rc, _, err = self.run_ep(IMAGE_CMD, env)
        self.assertEqual(rc, 64)
        self.assert_failed_before_coordinator(rc, err, "must be a bare bucket name")

    def test_s3_nothing_found(self):
        bucket = self.fixture({"key.txt": "sk-1\n", "active/readme.txt": "not a profile"})
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b",
                       AUTH_PROFILE_S3_PREFIX="p", STUB_S3_FIXTURE=str(bucket))
        _, rc, _, err = self.run_ep(IMAGE_CMD, env)
        self.assertEqual(rc, 66)
        self.assert_failed_before_coordinator(
            rc, err, "no profiles found: s3://b/p/active/*.json matched nothing")
        self.assertEqual(len(self.aws_calls()), 1)

    def test_s3_sync_failure(self):
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b", STUB_AWS_MODE="fail")
        _, rc, _, err = self.run_ep(IMAGE_CMD, env)
        self.assertEqual(rc, 75)
        self.assert_failed_before_coordinator(
            rc, err, "AccessDenied", "'aws s3 sync' from s3://b/ failed with exit code 1")

    def test_s3_without_aws_cli(self):
        (self.stubs / "aws").unlink()
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b")
        _, rc, _, err = self.run_ep(IMAGE_CMD, env)
        self.assertEqual(rc, 69)
        self.assert_failed_before_coordinator(rc, err, "needs the AWS CLI ('aws') on PATH")

    def test_sigterm_during_sync_stops_promptly(self):
        env = self.env(PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b", STUB_AWS_MODE="slow")
        proc = subprocess.Popen([str(ENTRYPOINT), *IMAGE_CMD], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = self.records / "aws.started"
        deadline = time.monotonic() + 10
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(started.exists(), "the aws stub did not start")
        aws_pid = int(started.read_text())
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(proc.returncode, 143)
        self.assert_failed_before_coordinator(proc.returncode, err, "received SIGTERM")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(aws_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(aws_pid, signal.SIGKILL)
            self.fail("the aws process was left running after SIGTERM")


def free_port_block(size):
    """A port P such that P .. P+size-1 are free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + size):
                t = socket.socket()
                socks.append(t)
                t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no free port block")


REAL_BINARY = os.environ.get("COORDINATOR_BINARY") or os.environ.get("COORDINATOR_BIN")


@unittest.skipUnless(REAL_BINARY, "set COORDINATOR_BINARY to the built coordinator to run this test")
class EntrypointWithRealCoordinatorTest(EntrypointFixture):
    """s3 backend (stub aws) -> real coordinator -> fake child; SIGTERM -> exit 0."""

    def test_s3_hydration_then_real_coordinator_serves_and_stops(self):
        binary = Path(REAL_BINARY).resolve()
        self.assertTrue(binary.is_file(), f"no coordinator binary at {binary}")
        fake_child = REPO / "tests" / "fixtures" / "fake_child" / "launch_camoufox.py"
        self.assertTrue(fake_child.exists(), fake_child)
        (self.stubs / "coordinator").unlink()
        bucket = self.fixture({"prod/active/alpha.json": json.dumps({"cookies": [], "origins": []})})
        port = free_port_block(1)
        env = self.env(
            PROFILE_BACKEND="s3", AUTH_PROFILE_S3_BUCKET="b", AUTH_PROFILE_S3_PREFIX="prod",
            STUB_S3_FIXTURE=str(bucket / "prod"), COORDINATOR_BIN=str(binary),
            COORDINATOR_HOST="127.0.0.1", COORDINATOR_PORT=str(port),
            BASE_API_PORT=str(free_port_block(1)), BASE_STREAM_PORT=str(free_port_block(1)),
            BASE_CAMOUFOX_PORT=str(free_port_block(1)), COORDINATOR_LOG_DIR=str(self.tmp / "logs"),
            EXTRA_COORDINATOR_ARGS="--shutdown-grace 1")
        env["PATH"] += ":/usr/bin:/bin"  # the fake child's grandchild runs python3
        args = ["--profiles", "/app/auth_profiles/active", "--launcher", str(fake_child),
                "--python", sys.executable]
        # Own session, so that cleanup can reach everything it started even when
        # the entrypoint failed to exec (then the coordinator is a grandchild).
        proc = subprocess.Popen([str(ENTRYPOINT), *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            deadline, status = time.monotonic() + 20, None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                        status = r.status
                        break
                except OSError:
                    time.sleep(0.2)
            self.assertEqual(status, 200, "coordinator never became ready")
            self.assertEqual(os.path.realpath(f"/proc/{proc.pid}/exe"), str(binary),
                             "the entrypoint must exec the coordinator (same PID)")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
                self.assertEqual(json.load(r)["ready_children"], ["alpha"])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
                self.assertEqual(json.load(r)["data"][0]["id"], "fake-model")
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
            self.assertEqual(proc.returncode, 0, out)
            self.assertIn("synced 1 profile(s); key.txt: not found", out)
            self.assertIn(f"profiles {self.cache}/active", out)
        finally:
            self._stop_group(proc)

    @staticmethod
    def _stop_group(proc):
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.communicate(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue



if __name__ == "__main__":
    unittest.main(verbosity=2)
