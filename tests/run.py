#!/usr/bin/env python3
"""Runs every test of dovecot-pop3ext and ends with the line
`N passed, N failed` (and `, N skipped` when some were skipped).

  - the C unit tests (test-* programs built by `make check`), under valgrind
    (under ASan/UBSan in a --enable-sanitizers build), each test line they
    print counted as one test;
  - the libFuzzer targets (fuzz/fuzz-*, when clang built them), each for a
    short fixed number of executions from its seed corpus, one test each;
  - the integration tests: tests/<area>/test_*.py, unittest modules that
    start real Dovecot (and slapd, PostgreSQL, ...) instances; modules run in
    parallel (--jobs), the tests of one module in order.

The work directory of a failed test (configs, logs, mail) is kept under
/tmp/pop3ext-test-work-<hash of the build dir>/ and named in the output.

In a build configured with --enable-sanitizers the integration tests run
Dovecot with the sanitizer runtimes, and a test after which a report is
found in its work dir fails with it (tests/lib/pop3ext_harness/
sanitizers.py).

Usage: run.py [--srcdir DIR] [--builddir DIR] [--jobs N] [--no-valgrind]
              [--unit-only | --integration-only] [--no-fuzz]
              [--fuzz-runs N] [-k PATTERN]
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []
        self.lock = threading.Lock()

    def add(self, status, name, detail="", seconds=None):
        with self.lock:
            t = "" if seconds is None else " (%.1fs)" % seconds
            if status == "ok":
                self.passed += 1
                log("ok      %s%s" % (name, t))
            elif status == "skip":
                self.skipped += 1
                log("skip    %s: %s" % (name, detail))
            else:
                self.failed += 1
                self.failures.append(name)
                log("FAIL    %s%s\n%s" % (name, t, indent(detail)))


def indent(text):
    return "\n".join("        " + line for line in text.rstrip().splitlines())


# -- C unit tests -------------------------------------------------------------

UNIT_LINE = re.compile(r"^(.*?)\s*\.+\s*: (ok|FAILED)\s*$")


def find_unit_tests(builddir):
    tests = []
    for path in glob.glob(os.path.join(builddir, "**", "test-*"),
                          recursive=True):
        if "/.libs/" in path:
            continue
        if os.path.isfile(path) and os.access(path, os.X_OK) and \
                not path.endswith((".o", ".sh", ".py", ".c")):
            tests.append(path)
    return sorted(tests)


def instrumented(builddir):
    """Whether builddir was configured with --enable-sanitizers."""
    try:
        with open(os.path.join(builddir, "sanitizers.env")) as f:
            return "enabled=yes" in f.read().split()
    except FileNotFoundError:
        return False


# the instrumented unit tests check for leaks themselves (valgrind can't
# run ASan programs); a report makes the program exit non-zero
UNIT_ASAN_OPTIONS = "detect_leaks=1:abort_on_error=0:print_summary=1"
UNIT_UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1"


def run_unit_test(path, builddir, valgrind, results):
    rel = os.path.relpath(path, builddir)
    cmd = [path]
    run_env = dict(os.environ, ASAN_OPTIONS=UNIT_ASAN_OPTIONS,
                   UBSAN_OPTIONS=UNIT_UBSAN_OPTIONS)
    vlog = None
    if valgrind:
        fd, vlog = tempfile.mkstemp(prefix="valgrind.")
        os.close(fd)
        cmd = ["valgrind", "-q", "--error-exitcode=213", "--leak-check=full",
               "--log-file=" + vlog] + cmd
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=os.path.dirname(path), capture_output=True,
                           text=True, timeout=600, env=run_env)
        out, code = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, code = "timed out after 600s\n%s" % (e.stdout or ""), -1
    secs = time.monotonic() - start
    vout = ""
    if vlog is not None:
        with open(vlog) as f:
            vout = f.read()
        os.unlink(vlog)
    cases = 0
    for line in out.splitlines():
        m = UNIT_LINE.match(line)
        if m:
            cases += 1
            results.add("ok" if m.group(2) == "ok" else "fail",
                        "%s: %s" % (rel, m.group(1).strip()),
                        out if m.group(2) != "ok" else "")
    if code != 0 or vout:
        results.add("fail", "%s (exit %d%s)" % (
            rel, code, ", valgrind errors" if vout else ""),
            out[-3000:] + vout[-5000:], secs)
    elif cases == 0:
        # a program without test lines (e.g. a compile check) passes by
        # running cleanly
        results.add("ok", rel, seconds=secs)


# -- fuzz targets ---------------------------------------------------------------

# executions per target in the test command (bench/fuzz.sh runs millions);
# the ledger target writes and reads four files per execution, the sqlbox
# rows target runs a SQLite transaction
FUZZ_RUNS = {"default": 50000, "state": 4000, "sqlbox-rows": 4000}


def find_fuzz_targets(builddir):
    return sorted(p for p in glob.glob(os.path.join(builddir, "fuzz",
                                                    "fuzz-*"))
                  if os.path.isfile(p) and os.access(p, os.X_OK) and
                  not p.endswith((".c", ".h", ".o")))


def run_fuzz_target(path, args, workroot, results, runs=None):
    """One libFuzzer target for a fixed number of executions, from its seed
    corpus (fuzz/corpus/<name>, only read: new inputs go to a scratch dir).
    A crash, leak, timeout or failed check fails it."""
    name = os.path.basename(path)[len("fuzz-"):]
    runs = runs or FUZZ_RUNS.get(name, FUZZ_RUNS["default"])
    scratch = tempfile.mkdtemp(prefix="fuzz-%s." % name, dir=workroot)
    corpus = os.path.join(scratch, "corpus")
    os.makedirs(corpus)
    seeds = os.path.join(args.srcdir, "fuzz", "corpus", name)
    cmd = [path, "-runs=%d" % runs, "-seed=1", "-max_len=4096",
           "-timeout=10", "-rss_limit_mb=2048",
           "-artifact_prefix=%s/" % scratch, corpus]
    if os.path.isdir(seeds):
        cmd.append(seeds)
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True,
                           timeout=900)
        out, code = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, code = "timed out after 900s\n%s" % (e.stderr or ""), -1
    secs = time.monotonic() - start
    label = "fuzz/%s (%d runs)" % (name, runs)
    if code == 0 and re.search(r"^Done %d runs" % runs, out, re.M):
        results.add("ok", label, seconds=secs)
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        artifacts = [n for n in os.listdir(scratch) if n != "corpus"]
        results.add("fail", label, "%s\nartifacts (kept): %s in %s" % (
            out[-6000:], " ".join(artifacts) or "none", scratch), secs)


def run_known_crashes(path, args, results):
    """The inputs of fuzz/known-crashes/<name>/ (crashes in code outside
    fuzz/, not fixed yet), with the target's guard off: each is a skip
    while it still crashes, and passes once it is fixed (then it belongs
    in fuzz/corpus/<name>/ and the guard can go)."""
    name = os.path.basename(path)[len("fuzz-"):]
    kdir = os.path.join(args.srcdir, "fuzz", "known-crashes", name)
    if not os.path.isdir(kdir):
        return
    for f in sorted(os.listdir(kdir)):
        label = "fuzz/%s known crash %s" % (name, f)
        env = dict(os.environ, POP3EXT_FUZZ_KNOWN_CRASHES="1")
        with tempfile.TemporaryDirectory(prefix="fuzz-known.") as scratch:
            p = subprocess.run([path, "-artifact_prefix=%s/" % scratch,
                                os.path.join(kdir, f)], cwd=scratch,
                               capture_output=True, text=True, timeout=120,
                               env=env)
        if p.returncode != 0:
            crash = [line for line in (p.stdout + p.stderr).splitlines()
                     if "Panic:" in line or "ERROR:" in line]
            results.add("skip", label, "still crashes, see "
                        "docs/RELIABILITY.md: %s" % (crash[:1] or ["?"])[0])
        else:
            results.add("ok", label)


# -- integration tests ----------------------------------------------------------

def find_modules(srcdir, pattern):
    mods = []
    for path in sorted(glob.glob(os.path.join(srcdir, "tests", "**",
                                              "test_*.py"), recursive=True)):
        if "/tests/lib/" in path:
            continue
        mods.append(path)
    if pattern:
        mods = [m for m in mods if re.search(pattern, m)]
    return mods


def run_module_child(path, result_file, pattern):
    """Child mode: runs one module's tests, writes results as JSON lines."""
    import importlib.util
    import unittest
    sys.path.insert(0, os.path.join(HERE, "lib"))
    sys.path.insert(0, os.path.dirname(path))
    from pop3ext_harness import sanitizers
    out = open(result_file, "a")

    def sanitizer_reports(test):
        """Reports the sanitizers wrote in the test's work dir (its
        instances'), in an instrumented build."""
        if not sanitizers.enabled() or not hasattr(test, "workdir"):
            return ""
        found = sanitizers.reports(test.workdir)
        return sanitizers.describe(found) if found else ""

    def emit(status, test, detail="", secs=None):
        out.write(json.dumps({"status": status, "name": test.id(),
                              "detail": detail, "seconds": secs}) + "\n")
        out.flush()

    class Result(unittest.TestResult):
        def startTest(self, test):
            super().startTest(test)
            self._start = time.monotonic()

        def _secs(self):
            return time.monotonic() - self._start

        def addSuccess(self, test):
            super().addSuccess(test)
            # (after the test's cleanups: its instances have stopped)
            reports = sanitizer_reports(test)
            if reports:
                emit("fail", test, "%s\nkept: %s" % (reports, test.workdir),
                     self._secs())
                return
            if hasattr(test, "remove_workdir"):
                test.remove_workdir()
            emit("ok", test, secs=self._secs())

        def _fail(self, test, err):
            detail = self._exc_info_to_string(err, test)
            reports = sanitizer_reports(test)
            if reports:
                detail += "\n" + reports
            if hasattr(test, "workdir"):
                detail += "\nkept: %s" % test.workdir
            emit("fail", test, detail, self._secs())

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._fail(test, err)

        def addError(self, test, err):
            super().addError(test, err)
            self._fail(test, err)

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                # each failed subtest counts as a failure of its own
                self._fail(subtest, err)

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            emit("skip", test, reason)

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            emit("fail", test, "expected failures are not allowed")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            emit("fail", test, "unexpected success")

    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    except Exception:
        import traceback
        out.write(json.dumps({"status": "fail", "name": name + " (import)",
                              "detail": traceback.format_exc(),
                              "seconds": None}) + "\n")
        return 1
    if pattern and not re.search(pattern, path):
        suite = unittest.TestSuite(
            t for t in iter_tests(suite) if re.search(pattern, t.id()))
    suite.run(Result())
    return 0


def iter_tests(suite):
    import unittest
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


def run_module(path, args, workroot, results, timeout):
    rel = os.path.relpath(path, args.srcdir)
    fd, result_file = tempfile.mkstemp(prefix="results.", dir=workroot)
    os.close(fd)
    env = dict(os.environ)
    env["POP3EXT_SRCDIR"] = args.srcdir
    env["POP3EXT_BUILDDIR"] = args.builddir
    env["POP3EXT_TEST_WORKDIR"] = workroot
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, os.path.abspath(__file__), "--child", path,
           "--result-file", result_file]
    if args.k:
        cmd += ["-k", args.k]
    start = time.monotonic()
    with open(result_file + ".out", "wb") as out:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            results.add("fail", "%s (timed out after %ds)" % (rel, timeout),
                        "", time.monotonic() - start)
    seen = 0
    with open(result_file) as f:
        for line in f:
            r = json.loads(line)
            seen += 1
            area = os.path.relpath(os.path.dirname(path),
                                   os.path.join(args.srcdir, "tests"))
            results.add(r["status"], area + "/" + r["name"], r["detail"],
                        r["seconds"])
    with open(result_file + ".out", "rb") as f:
        output = f.read().decode("utf-8", "replace")
    if p.returncode not in (0, None) and p.returncode != -signal.SIGTERM:
        results.add("fail", "%s (exit %d)" % (rel, p.returncode),
                    output[-4000:])
    elif seen == 0 and not args.k:
        results.add("fail", "%s (ran no test)" % rel, output[-4000:])
    os.unlink(result_file)
    os.unlink(result_file + ".out")


def kill_leftovers(workroot):
    """Stops processes that tests started and left running (their pids are
    recorded under <workroot>/pids by the harness)."""
    for pidfile in glob.glob(os.path.join(workroot, "pids", "*")):
        try:
            pid = int(os.path.basename(pidfile))
            os.killpg(pid, signal.SIGKILL)
            log("note    killed process group %d left running by a test" % pid)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        os.unlink(pidfile)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--srcdir", default=os.path.dirname(HERE))
    ap.add_argument("--builddir")
    ap.add_argument("--jobs", type=int,
                    default=int(os.environ.get("POP3EXT_TEST_JOBS", "2")))
    ap.add_argument("--no-valgrind", action="store_true")
    ap.add_argument("--unit-only", action="store_true")
    ap.add_argument("--integration-only", action="store_true")
    ap.add_argument("--no-fuzz", action="store_true",
                    help="don't run the fuzz targets")
    ap.add_argument("--fuzz-runs", type=int,
                    help="executions per fuzz target (default: %s)"
                    % FUZZ_RUNS)
    ap.add_argument("--module-timeout", type=int, default=1800)
    ap.add_argument("-k", help="only tests whose path or id matches")
    ap.add_argument("--child")
    ap.add_argument("--result-file")
    args = ap.parse_args()

    if args.child:
        return run_module_child(args.child, args.result_file, args.k)

    args.srcdir = os.path.abspath(args.srcdir)
    args.builddir = os.path.abspath(args.builddir or
                                    os.path.join(args.srcdir, "build"))
    if os.geteuid() != 0 and not args.unit_only:
        log("The integration tests start Dovecot, slapd and PostgreSQL as "
            "they run in production and must run as root.")
    results = Results()
    start = time.monotonic()

    # Under /tmp: Dovecot's mail processes run as an unprivileged user and
    # must reach the homes, which a checkout under /root would not allow.
    # One per build tree, so that two checkouts can test at once.
    import hashlib
    workroot = "/tmp/pop3ext-test-work-" + hashlib.sha1(
        args.builddir.encode()).hexdigest()[:8]
    if os.path.isdir(workroot):
        kill_leftovers(workroot)
        shutil.rmtree(workroot, ignore_errors=True)
    os.makedirs(workroot, exist_ok=True)
    os.chmod(workroot, 0o755)

    if not args.integration_only:
        valgrind = not args.no_valgrind and shutil.which("valgrind") and \
            not instrumented(args.builddir)
        if instrumented(args.builddir):
            log("note    sanitizer build: unit tests run under ASan/UBSan, "
                "Dovecot's processes with the runtimes preloaded")
        for path in find_unit_tests(args.builddir):
            if args.k and not re.search(args.k, path):
                continue
            run_unit_test(path, args.builddir, valgrind, results)

    if not args.integration_only and not args.no_fuzz:
        targets = find_fuzz_targets(args.builddir)
        if not targets and (not args.k or re.search(args.k, "fuzz/")):
            results.add("skip", "fuzz", "no fuzz targets built (configure "
                        "found no clang that builds them)")
        for path in targets:
            if args.k and not re.search(args.k, path):
                continue
            run_fuzz_target(path, args, workroot, results, args.fuzz_runs)
            run_known_crashes(path, args, results)

    if not args.unit_only:
        # -k matches modules by path, or tests by id within them
        mods = find_modules(args.srcdir, None)
        queue = list(mods)
        qlock = threading.Lock()

        def worker():
            while True:
                with qlock:
                    if not queue:
                        return
                    path = queue.pop(0)
                run_module(path, args, workroot, results, args.module_timeout)

        threads = [threading.Thread(target=worker)
                   for _ in range(max(1, args.jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        kill_leftovers(workroot)

    log("")
    log("tests took %.0fs" % (time.monotonic() - start))
    if results.failures:
        log("failed:")
        for name in results.failures:
            log("  " + name)
    line = "%d passed, %d failed" % (results.passed, results.failed)
    if results.skipped:
        line += ", %d skipped" % results.skipped
    log(line)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
