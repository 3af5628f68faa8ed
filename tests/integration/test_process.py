"""Process hygiene of the real binary: no zombie and no orphan left behind.

The coordinator is a child subreaper (PR_SET_CHILD_SUBREAPER), so a browser
orphaned by a launcher that exits is re-parented to it, and it must reap it
(in a container it is PID 1; here PID 1 may reap slowly or never).
"""

import os
import unittest

from harness import Coordinator, proc_stat, wait_until


def zombie_children(pid):
    """Pids of zombies whose parent is `pid`."""
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st.state == "Z" and st.ppid == pid:
            zombies.append(int(entry))
    return zombies


class SubreaperTests(unittest.TestCase):

    def test_orphaned_grandchild_is_killed_and_reaped(self):
        # The launcher spawns a "browser" and exits at once, leaving it behind.
        # Long backoff keeps the restarted launcher from muddying the picture.
        with Coordinator({"orphaner": {"orphan_grandchild": True}, "steady": {}},
                         extra_args=["--max-restarts", "0"]) as c:
            self.assertTrue(c.wait_start_records(2, timeout=10), "children did not start")
            record = c.start_records("orphaner")[0]
            grandchild = record["grandchild_pid"]
            self.assertTrue(grandchild, record)
            # Gone from /proc entirely: killed with the launcher's process group and
            # reaped by the coordinator (a zombie would still be listed).
            self.assertTrue(wait_until(lambda: proc_stat(grandchild) is None, 5),
                            f"grandchild {grandchild} left behind: {proc_stat(grandchild)}")
            self.assertTrue(wait_until(lambda: zombie_children(c.proc.pid) == [], 5),
                            f"zombies under the coordinator: {zombie_children(c.proc.pid)}")
            # The healthy child keeps serving.
            self.assertEqual(c.chat("still there?").status, 200)

    def test_no_zombie_after_children_crash(self):
        with Coordinator({"crasher": {"exit_after": 0.5}, "steady": {}},
                         extra_args=["--max-restarts", "0"], wait_ready=1) as c:
            self.assertTrue(wait_until(lambda: len(c.start_records("crasher")) >= 1, 10))
            pid = c.start_records("crasher")[0]["pid"]
            self.assertTrue(wait_until(lambda: proc_stat(pid) is None, 6),
                            f"crashed launcher {pid} not reaped: {proc_stat(pid)}")
            self.assertEqual(zombie_children(c.proc.pid), [])


if __name__ == "__main__":
    unittest.main()


class ProfilePermissionTests(unittest.TestCase):

    def test_profile_readable_by_others_draws_a_warning(self):
        with Coordinator({"private": {}, "shared": {}}) as c:
            os.chmod(c.profile_paths["private"], 0o600)
            os.chmod(c.profile_paths["shared"], 0o644)
            before = len(c.stderr())
            # Discovery, and so the check, runs at start and on every reload.
            self.assertEqual(c.request("POST", "/admin/reload").status, 200)
            self.assertTrue(wait_until(lambda: "shared.json is readable by group or others"
                                       in c.stderr()[before:], 5), c.stderr()[-2000:])
            self.assertNotIn("private.json is readable", c.stderr()[before:])
