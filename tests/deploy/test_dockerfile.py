#!/usr/bin/env python3
"""Static checks of docker/Dockerfile (no Docker engine is needed or used).

Run from the repository root:  python3 tests/deploy/test_dockerfile.py
Needs Python 3 (standard library) and shellcheck (for the RUN commands).

The checks live in check_dockerfile(), which returns a list of problems; the
mutation tests feed it broken variants of the real Dockerfile to show that each
check can fail.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "docker" / "Dockerfile.dockerignore"

BUILD_PACKAGES = ["cmake", "g++", "ninja-build", "libboost-dev", "libboost-filesystem-dev",
                  "nlohmann-json3-dev", "libspdlog-dev", "libcli11-dev", "libgtest-dev", "libssl-dev"]
ROOT_USERS = {"root", "0", "root:root", "0:0", "root:0", "0:root"}


def parse(text):
    """Returns [(INSTRUCTION, args)] with continuations joined and comments dropped."""
    instructions, buf = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and buf):
            continue  # comment (also inside a continuation), or blank line inside one
        if not stripped:
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        line = buf + stripped
        buf = ""
        word, _, rest = line.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    if buf:
        instructions.append(("<UNTERMINATED>", buf))
    return instructions


def stages(instructions):
    """Splits into (global ARG defaults, [stage dicts])."""
    global_args, out = {}, []
    for ins, args in instructions:
        if ins == "FROM":
            parts = args.split()
            image = parts[0]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                           lambda m: global_args.get(m.group(1) or m.group(2), m.group(0)), image)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            out.append({"image": image, "name": name, "ins": []})
        elif not out:
            if ins == "ARG":
                k, _, v = args.partition("=")
                global_args[k.strip()] = v.strip()
        else:
            out[-1]["ins"].append((ins, args))
    return global_args, out


def exec_form(args):
    """The JSON array of an exec-form instruction, or None for shell form."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        return value
    return None


def check_dockerfile(text):
    problems = []
    instructions = parse(text)
    if any(i == "<UNTERMINATED>" for i, _ in instructions):
        problems.append("a line continuation runs off the end of the file")
    _, st = stages(instructions)
    if len(st) < 2:
        return problems + [f"expected a multi-stage build, found {len(st)} stage(s)"]
    build, final = st[0], st[-1]

    # Build stage: Debian 12, the apt packages, CMake build, unit tests.
    if not re.fullmatch(r"debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]{64})?", build["image"]):
        problems.append(f"build stage must be Debian 12, is {build['image']}")
    build_runs = " ".join(a for i, a in build["ins"] if i == "RUN")
    install = re.search(r"apt-get install ([^&;]*)", build_runs)
    installed = set(install.group(1).split()) if install else set()
    for pkg in BUILD_PACKAGES:
        if pkg not in installed:
            problems.append(f"build stage does not apt-get install {pkg}")
    if not re.search(r"cmake -S \. -B build -G Ninja -DCMAKE_BUILD_TYPE=Release", build_runs):
        problems.append("build stage does not configure with CMake/Ninja in Release")
    if "cmake --build build" not in build_runs:
        problems.append("build stage does not run cmake --build build")
    if not re.search(r"ctest --test-dir build -L unit", build_runs):
        problems.append("build stage does not run the unit tests (ctest -L unit)")

    # Runtime stage: slim Debian-based Python image.
    if not re.fullmatch(r"python:3\.\d+(\.\d+)?-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?",
                        final["image"]):
        problems.append(f"runtime stage must be a slim Debian-based Python image, is {final['image']}")
    fins = final["ins"]

    def all_of(name):
        return [a for i, a in fins if i == name]

    runs = " ".join(all_of("RUN"))
    copies = all_of("COPY")

    # EXPOSE 2048 and nothing else, in any stage.
    exposed = [tok for s in st for i, a in s["ins"] if i == "EXPOSE" for tok in a.split()]
    if [re.sub(r"/tcp$", "", t) for t in exposed] != ["2048"]:
        problems.append(f"EXPOSE must be exactly 2048, found {exposed or 'none'}")

    # ENTRYPOINT: exactly one, exec form, the entrypoint script copied from docker/.
    entrypoints = all_of("ENTRYPOINT")
    if len(entrypoints) != 1:
        problems.append(f"runtime stage must have exactly one ENTRYPOINT, has {len(entrypoints)}")
    for ep in entrypoints:
        form = exec_form(ep)
        if form is None:
            problems.append(f"ENTRYPOINT must be exec form (a JSON array), is: {ep}")
        else:
            target = form[0]
            if not any("docker/entrypoint.sh" in c and c.split()[-1] == target for c in copies):
                problems.append(f"ENTRYPOINT {target} is not docker/entrypoint.sh copied in")

    # CMD: exec form, the profiles folder and the child launcher.
    cmds = all_of("CMD")
    if len(cmds) != 1:
        problems.append(f"runtime stage must have exactly one CMD, has {len(cmds)}")
    for cmd in cmds:
        form = exec_form(cmd)
        if form is None:
            problems.append(f"CMD must be exec form (a JSON array), is: {cmd}")
            continue
        pairs = dict(zip(form[::2], form[1::2]))
        if pairs.get("--profiles") != "/app/auth_profiles/active":
            problems.append("CMD does not pass --profiles /app/auth_profiles/active")
        launcher = pairs.get("--launcher", "")
        if not launcher.endswith("/launch_camoufox.py"):
            problems.append("CMD does not pass --launcher .../launch_camoufox.py")
        elif not any(c.split()[-1].rstrip("/") == launcher.rsplit("/", 1)[0]
                     for c in copies if c.startswith("--from=child-src")):
            problems.append(f"the launcher {launcher} is not inside the copied child source")

    # HEALTHCHECK on /ready.
    checks = all_of("HEALTHCHECK")
    if len(checks) != 1 or checks[0].upper().startswith("NONE") or "/ready" not in checks[0]:
        problems.append("runtime stage needs one HEALTHCHECK that probes /ready")

    # Non-root user at the end.
    users = all_of("USER")
    if not users:
        problems.append("runtime stage never sets USER (would run as root)")
    elif users[-1].strip() in ROOT_USERS or users[-1].strip().startswith(("0:", "root:")):
        problems.append(f"the final USER is root ({users[-1]})")
    elif not re.search(r"useradd\b.*--uid", runs):
        problems.append("the runtime user is not created with a fixed uid")

    # Volumes, stop signal.
    volumes = set()
    for v in all_of("VOLUME"):
        form = exec_form(v)
        volumes.update(form if form is not None else v.split())
    for want in ("/app/auth_profiles", "/app/logs"):
        if want not in volumes:
            problems.append(f"no VOLUME for {want}")
    signals = all_of("STOPSIGNAL")
    if [s.strip() for s in signals] not in (["SIGTERM"], ["15"]):
        problems.append(f"STOPSIGNAL must be SIGTERM, found {signals or 'none'}")

    # The child at a pinned ref, its dependencies, camoufox fetch.
    all_args = {a.partition("=")[0] for s in st for i, a in s["ins"] if i == "ARG"}
    for arg in ("AISTUDIO_REPO", "AISTUDIO_REF"):
        if arg not in all_args:
            problems.append(f"no build argument {arg}")
    every_run = " ".join(a for s in st for i, a in s["ins"] if i == "RUN")
    if '"${AISTUDIO_REF}"' not in every_run or '"${AISTUDIO_REPO}"' not in every_run:
        problems.append("the child source is not fetched from AISTUDIO_REPO at AISTUDIO_REF")
    if not re.search(r"pip install [^&;]*-r [^&;]*requirements", runs):
        problems.append("runtime stage does not pip install the child's requirements")
    if not re.search(r"(python -m )?camoufox fetch", runs):
        problems.append("runtime stage does not run camoufox fetch")
    if not any(c.startswith("--from=build") and c.split()[-1] == "/usr/local/bin/coordinator"
               for c in copies):
        problems.append("the coordinator binary is not copied from the build stage to /usr/local/bin")
    return problems


def shellcheck_runs(text):
    """shellcheck (as bash, the stages' SHELL) on every RUN command; returns the findings."""
    if shutil.which("shellcheck") is None:
        raise AssertionError("shellcheck is not installed (apt-get install -y shellcheck)")
    findings = []
    for n, (ins, args) in enumerate(parse(text)):
        if ins != "RUN" or args.startswith("["):
            continue
        fd, path = tempfile.mkstemp(suffix=".sh")
        try:
            with os.fdopen(fd, "w") as f:
                f.write("#!/bin/bash\nset -o pipefail\n" + args + "\n")
            r = subprocess.run(["shellcheck", "-s", "bash", path], capture_output=True, text=True)
            if r.returncode != 0:
                findings.append(f"RUN #{n}: {args[:80]}...\n{r.stdout}")
        finally:
            os.unlink(path)
    return findings


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.text = DOCKERFILE.read_text()

    def test_real_dockerfile_passes(self):
        self.assertEqual(check_dockerfile(self.text), [])

    def test_exactly_one_expose_of_2048(self):
        exposes = [a for i, a in parse(self.text) if i == "EXPOSE"]
        self.assertEqual(exposes, ["2048"])

    def test_entrypoint_and_cmd_are_exec_form(self):
        final = stages(parse(self.text))[1][-1]["ins"]
        ep = [exec_form(a) for i, a in final if i == "ENTRYPOINT"]
        self.assertEqual(ep, [["/usr/local/bin/docker-entrypoint.sh"]])
        cmd = [exec_form(a) for i, a in final if i == "CMD"]
        self.assertEqual(cmd, [["--profiles", "/app/auth_profiles/active",
                                "--launcher", "/opt/aistudioproxyapi/launch_camoufox.py"]])

    def test_dockerignore_keeps_secrets_out_of_the_context(self):
        lines = {l.strip() for l in DOCKERIGNORE.read_text().splitlines()
                 if l.strip() and not l.lstrip().startswith("#")}
        for pattern in ("auth_profiles", "key.txt", ".git", "build", "docker/.env.docker"):
            self.assertIn(pattern, lines)

    def test_healthcheck_is_shell_valid(self):
        hc = [a for i, a in parse(self.text) if i == "HEALTHCHECK"][0]
        cmd = hc.split(" CMD ", 1)[1]
        shlex.split(cmd)  # balanced quotes
        self.assertIn("${COORDINATOR_PORT:-2048}/ready", cmd)

    def test_every_stage_runs_bash_with_pipefail(self):
        for stage in stages(parse(self.text))[1]:
            shells = [a for i, a in stage["ins"] if i == "SHELL"]
            self.assertEqual(shells, ['["/bin/bash", "-o", "pipefail", "-c"]'], stage["name"])

    def test_run_commands_pass_shellcheck(self):
        self.assertEqual(shellcheck_runs(self.text), [])

    # ---- the checks can fail: broken variants are rejected --------------
    def test_shellcheck_catches_a_bad_run(self):
        bad = self.mutate('install -m 0755 build/coordinator /out/coordinator',
                          'install -m 0755 build/coordinator $OUT_DIR/coordinator')
        self.assertEqual(len(shellcheck_runs(bad)), 1)

    def mutate(self, old, new, count=1):
        self.assertIn(old, self.text)
        return self.text.replace(old, new, count)

    def assert_rejected(self, text, fragment):
        problems = check_dockerfile(text)
        self.assertTrue(any(fragment in p for p in problems),
                        f"expected a problem containing {fragment!r}, got {problems}")

    def test_rejects_shell_form_entrypoint(self):
        self.assert_rejected(
            self.mutate('ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
                        "ENTRYPOINT /usr/local/bin/docker-entrypoint.sh"),
            "ENTRYPOINT must be exec form")

    def test_rejects_shell_form_cmd(self):
        self.assert_rejected(self.mutate('CMD ["--profiles"', 'CMD --profiles ["--profiles"'),
                             "CMD must be exec form")

    def test_rejects_child_ports(self):
        self.assert_rejected(self.mutate("EXPOSE 2048", "EXPOSE 2048 3100"), "EXPOSE must be exactly 2048")
        self.assert_rejected(self.mutate("EXPOSE 2048", "EXPOSE 2048\nEXPOSE 9222/tcp"),
                             "EXPOSE must be exactly 2048")
        self.assert_rejected(self.mutate("EXPOSE 2048", "EXPOSE 8080"), "EXPOSE must be exactly 2048")
        self.assert_rejected(self.mutate("FROM ${PYTHON_IMAGE} AS child-src",
                                         "FROM ${PYTHON_IMAGE} AS child-src\nEXPOSE 3200"),
                             "EXPOSE must be exactly 2048")

    def test_rejects_missing_or_disabled_healthcheck(self):
        no_hc = re.sub(r"HEALTHCHECK [^\n]*\\\n[^\n]*\n", "", self.text)
        self.assertNotIn("HEALTHCHECK", no_hc)
        self.assert_rejected(no_hc, "HEALTHCHECK")
        self.assert_rejected(self.mutate("2048}/ready", "2048}/health"), "HEALTHCHECK")

    def test_rejects_root_user(self):
        self.assert_rejected(self.mutate("WORKDIR /app\nUSER coordinator", "WORKDIR /app\nUSER root"),
                             "the final USER is root")

    def test_rejects_missing_unit_tests_and_packages(self):
        self.assert_rejected(self.mutate("ctest --test-dir build -L unit", "true"), "unit tests")
        self.assert_rejected(self.mutate("libspdlog-dev ", ""), "libspdlog-dev")

    def test_rejects_wrong_bases(self):
        self.assert_rejected(self.mutate("ARG DEBIAN_IMAGE=debian:12-slim", "ARG DEBIAN_IMAGE=ubuntu:24.04"),
                             "build stage must be Debian 12")
        self.assert_rejected(self.mutate("ARG PYTHON_IMAGE=python:3.11-slim-bookworm",
                                         "ARG PYTHON_IMAGE=python:3.11-alpine"),
                             "slim Debian-based Python")

    def test_rejects_missing_volume_and_stopsignal(self):
        self.assert_rejected(self.mutate('VOLUME ["/app/auth_profiles", "/app/logs"]', 'VOLUME ["/app/logs"]'),
                             "no VOLUME for /app/auth_profiles")
        self.assert_rejected(self.mutate("STOPSIGNAL SIGTERM", "STOPSIGNAL SIGINT"), "STOPSIGNAL")

    def test_rejects_missing_camoufox_fetch(self):
        self.assert_rejected(self.mutate("python -m camoufox fetch", "true"), "camoufox fetch")


if __name__ == "__main__":
    unittest.main(verbosity=2)
