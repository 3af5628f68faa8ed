#!/usr/bin/env python3
"""Checks what the deployment documents say about the real child's ports and keys (issue 12).

Run from the repository root:  python3 tests/deploy/test_docs.py
Needs Python 3 (standard library) only.

1. No shipped file still claims that the children listen on (or are only reachable on)
   127.0.0.1: the real child binds 0.0.0.0. README, docker/README.md, docs/deploy-aws.md and
   deploy/terraform/README.md say so, name the unauthenticated GET /api/keys, and link
   docs/real-child.md.
2. README's "API keys at the edge" says how the coordinator's keys and the child's own
   auth_profiles/key.txt fit together (leave it empty; AUTH_KEY_FILE_PATH is ignored).
3. docs/real-child.md has a row for every shared path of the launcher's folder, and every
   `path:line` it cites names a file of the child. When the child's source is at hand
   (AISTUDIOPROXYAPI_DIR, default /work/realchild, or the AISTUDIO_SOURCE_DIR of a checkout),
   the cited files must exist there and the cited lines must be inside them; otherwise that
   part is skipped.
"""
import os
import re
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHILD_DIR = Path(os.environ.get("AISTUDIOPROXYAPI_DIR", "/work/realchild"))

# Statements that were true of the fake child only. Whitespace is normalised before matching.
STALE = [
    "children are reached on 127.0.0.1",
    "the children bind 127.0.0.1",
    "children still bind 127.0.0.1",
    "are bound to 127.0.0.1 inside the container",
    "stay on 127.0.0.1 inside the container",
    "127.0.0.1 only, never in a security group",
    "(127.0.0.1 only)",
    "Port layout of the children on 127.0.0.1",
    "Children listen on 127.0.0.1",
    "the file's path goes to every child as `AUTH_KEY_FILE_PATH`",
    "The children get its absolute path as AUTH_KEY_FILE_PATH",
]
SHIPPED = ["README.md", "docker/README.md", "docker/Dockerfile", "docker/docker-compose.yml",
           "docker/.env.docker", "docs/deploy-aws.md", "deploy/terraform/README.md",
           "deploy/terraform/main.tf", "deploy/terraform/variables.tf",
           "deploy/systemd/coordinator.env", "deploy/systemd/coordinator.service"]


def flat(text):
    return re.sub(r"\s+", " ", text)


def section(text, heading):
    """The text under a Markdown heading, up to the next heading of the same or a higher level."""
    m = re.search(r"^(#+) " + re.escape(heading) + r"\s*$", text, re.M)
    if not m:
        return None
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(r"^#{1,%d} " % level, rest, re.M)
    return rest[:end.start()] if end else rest


class PortStatementsTests(unittest.TestCase):

    def test_no_stale_statement_is_left(self):
        found = []
        for rel in SHIPPED:
            text = flat((REPO / rel).read_text())
            found += [f"{rel}: {s!r}" for s in STALE if s in text]
        self.assertEqual(found, [])

    def test_the_documents_say_the_child_binds_every_address(self):
        for rel in ["docker/README.md", "docs/deploy-aws.md", "deploy/terraform/README.md"]:
            text = flat((REPO / rel).read_text())
            self.assertIn("0.0.0.0", text, rel)
            self.assertIn("/api/keys", text, rel)
            self.assertRegex(text, r"\(\.\./docs/real-child\.md\)|\(real-child\.md\)|\(\.\./\.\./docs/real-child\.md\)", rel)
        readme = (REPO / "README.md").read_text()
        ports = section(readme, "Port layout")
        self.assertIsNotNone(ports, "README has no Port layout section")
        ports = flat(ports)
        self.assertIn("0.0.0.0", ports)
        self.assertIn("/api/keys", ports)
        self.assertIn("(docs/real-child.md)", ports)
        self.assertIn("coordinator-firewall.service", ports)

    def test_readme_says_how_the_keys_fit_together(self):
        readme = flat((REPO / "README.md").read_text())
        m = re.search(r"\*\*API keys at the edge\*\*(.*?)(?= - \*\*|$)", readme)
        self.assertTrue(m, "no 'API keys at the edge' bullet")
        bullet = m.group(1)
        for needle in ("auth_profiles/key.txt", "empty", "401", "AUTH_KEY_FILE_PATH", "ignores"):
            self.assertIn(needle, bullet)


ROW_PATHS = ["logs/launch_app.log", "logs/app.log", "logs/fc_debug/", "certs/",
             "config/profile_usage.json", "config/cooldown_status.json", "errors_py/",
             "upload_files/", "auth_profiles/key.txt", "ports_config.json", ".env"]
CITATION = re.compile(r"`((?:[A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_.]*\.py):(\d+)(?:-(\d+))?")


class RealChildPageTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.text = (REPO / "docs" / "real-child.md").read_text()

    def table_rows(self, heading):
        body = section(self.text, heading)
        self.assertIsNotNone(body, f"no section {heading!r}")
        return [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("| ---")]

    def test_every_shared_path_has_a_row_with_a_citation(self):
        rows = self.table_rows("The shared launcher folder")
        self.assertEqual(rows[0].split("|")[1].strip().split()[0], "path")
        for path in ROW_PATHS:
            row = [r for r in rows if f"`{path}" in r.split("|")[1]]
            self.assertEqual(len(row), 1, f"no single row for {path}")
            cells = [c.strip() for c in row[0].strip("|").split("|")]
            self.assertEqual(len(cells), 4, f"{path}: expected 4 columns")
            self.assertTrue(CITATION.search(row[0]), f"{path}: its row cites no file:line of the child")
            self.assertGreater(len(cells[2]), 20, f"{path}: what breaks?")
            self.assertGreater(len(cells[3]), 15, f"{path}: what to do?")

    def test_the_ports_table_covers_the_three_ports(self):
        rows = self.table_rows("Ports: the child listens on every address")
        text = "\n".join(rows)
        for flag in ("--server-port", "--stream-port", "--camoufox-debug-port"):
            self.assertIn(flag, text)
        self.assertIn("0.0.0.0", text)

    def test_citations_point_into_the_child(self):
        cites = CITATION.findall(self.text)
        self.assertGreater(len(cites), 40)
        if not (CHILD_DIR / "launch_camoufox.py").is_file():
            self.skipTest(f"the child's source is not at {CHILD_DIR} (set AISTUDIOPROXYAPI_DIR)")
        bad = []
        for path, first, last in cites:
            f = CHILD_DIR / path
            if not f.is_file():
                # A short name ("setup.py:108") refers to the file named in the same sentence.
                matches = [p for p in CHILD_DIR.rglob(Path(path).name) if "tests" not in p.parts]
                if len(matches) != 1:
                    bad.append(f"{path}: not a file of the child")
                    continue
                f = matches[0]
            lines = f.read_text(errors="replace").count("\n") + 1
            if int(last or first) > lines:
                bad.append(f"{path}:{first}-{last}: the file has {lines} lines")
        self.assertEqual(bad, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
