"""The sanitizer mode of the tests: when the build under test was configured
with --enable-sanitizers (its sanitizers.env says enabled=yes), every
Dovecot instance runs its processes with the ASan runtime preloaded
(Dovecot itself is not instrumented, the project's modules are), and the
runtimes write their reports to <instance dir>/sanitizer/. tests/run.py
scans a test's work dir for such reports when the test ends and fails the
test that produced one, with the report.

    if sanitizers.enabled():
        env = sanitizers.environment(logdir)   # LD_PRELOAD, ASAN_OPTIONS...
    sanitizers.reports(workdir)                # [(path, text), ...]
"""

import glob
import os
import shutil
import tempfile

from . import env

# Dovecot's processes exit with their modules unloaded and some of Dovecot's
# own allocations alive: leak reports there would have no usable stacks and
# not be the project's, so leaks are checked in the unit tests (valgrind, or
# LeakSanitizer in the instrumented unit tests) and by the fuzz targets.
ASAN_OPTIONS = [
    "detect_leaks=0",
    # preloaded, so it does come first; kept for processes that exec others
    "verify_asan_link_order=0",
    "abort_on_error=0",
    "disable_coredump=1",
    # many processes at once on a small machine: keep freed memory short
    "quarantine_size_mb=32",
    "detect_stack_use_after_return=0",
    "print_summary=1",
    "strip_path_prefix=" + env.SRCDIR + "/",
]
UBSAN_OPTIONS = [
    "print_stacktrace=1",
    "halt_on_error=0",
    "print_summary=1",
]
# Dovecot's master passes only the variables import_environment names
_SYMBOLIZERS = ("/usr/bin/llvm-symbolizer", "/usr/bin/llvm-symbolizer-14")


def _read_env_file():
    values = {}
    path = os.path.join(env.BUILDDIR, "sanitizers.env")
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    values[k.strip()] = v.strip()
    except FileNotFoundError:
        pass
    return values


_CONF = _read_env_file()


def enabled():
    """Whether the build under test is instrumented."""
    return _CONF.get("enabled") == "yes"


def runtime():
    """The sanitizer runtimes to preload, colon-separated (libasan.so and
    libubsan.so of the compiler that built the modules)."""
    return _CONF.get("runtime", "")


def log_dir(instance_dir):
    """Where the processes of the instance in instance_dir write their
    reports (made writable for every user: mail processes run as nobody,
    auth as dovecot)."""
    d = os.path.join(instance_dir, "sanitizer")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o1777)
    return d


_options_lib = []


def options_library():
    """tests/sanitizers/fixtures/pop3ext-sanitizer-options.c as built, copied
    where every user can read it (a build tree under /root is not)."""
    if not _options_lib:
        src = env.built("tests/sanitizers/.libs/"
                        "libpop3ext_sanitizer_options.so")
        root = os.environ.get("POP3EXT_TEST_WORKDIR") or tempfile.gettempdir()
        d = tempfile.mkdtemp(prefix="sanitizer-preload.", dir=root)
        os.chmod(d, 0o755)
        dst = os.path.join(d, os.path.basename(src))
        shutil.copy(src, dst)
        os.chmod(dst, 0o755)
        _options_lib.append(dst)
    return _options_lib[0]


def add_fault_plugin(dovecot):
    """Puts the test-only plugin with deliberate defects (tests/sanitizers/
    fixtures/pop3ext-sanitizer-fault-plugin.c) into an instance's plugin
    dir, before it starts, as mail plugin pop3ext_sanitizer_fault."""
    src = env.built("tests/sanitizers/.libs/pop3ext_sanitizer_fault.so")
    dst = os.path.join(dovecot.plugin_dir,
                       "lib99_pop3ext_sanitizer_fault_plugin.so")
    shutil.copy(src, dst)
    os.chmod(dst, 0o755)


def preload(other=None):
    """An LD_PRELOAD value: when enabled, the ASan runtime first, the
    options library, gcc's UBSan runtime; then other (e.g. pam_wrapper).
    libfaketime goes before them all."""
    libs = []
    if enabled():
        rts = runtime().split(":")
        libs = rts[:1] + [options_library()] + rts[1:]
    if other and "libfaketime" in os.path.basename(other):
        # libfaketime's start-up deadlocks when it is loaded after the
        # ASan runtime; before it, with verify_asan_link_order=0, it works
        libs.insert(0, other)
    elif other:
        libs.append(other)
    return ":".join(libs)


def environment(logdir):
    """The variables a process that loads the project's modules needs
    ({} when the build is not instrumented). No value holds a space:
    import_environment splits at spaces."""
    if not enabled():
        return {}
    # one path for both: gcc's two runtimes share one report file
    logpath = "log_path=" + os.path.join(logdir, "report")
    # POP3EXT_ASAN_OPTIONS / POP3EXT_UBSAN_OPTIONS: more options (a later
    # one wins), e.g. detect_leaks=1
    asan = ASAN_OPTIONS + [o for o in os.environ.get(
        "POP3EXT_ASAN_OPTIONS", "").split(":") if o] + [logpath]
    ubsan = UBSAN_OPTIONS + [o for o in os.environ.get(
        "POP3EXT_UBSAN_OPTIONS", "").split(":") if o] + [logpath]
    e = {"LD_PRELOAD": preload(),
         "ASAN_OPTIONS": ":".join(asan),
         "UBSAN_OPTIONS": ":".join(ubsan)}
    for s in _SYMBOLIZERS:
        if os.path.exists(s):
            e["ASAN_SYMBOLIZER_PATH"] = s
            break
    return e


# what a runtime's report starts with, where one went to stderr (and so to
# Dovecot's log) instead of log_path; "Can't open file" is a runtime that
# had a report to write and could not (a chrooted login process)
_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
            "AddressSanitizer:DEADLYSIGNAL", ": runtime error: ",
            "SUMMARY: UndefinedBehaviorSanitizer",
            "ERROR: Can't open file: ")


def _log_reports(root):
    found = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.log"),
                                 recursive=True)):
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        hits = [i for i, line in enumerate(lines)
                if any(m in line for m in _MARKERS)]
        if hits:
            # the report's lines after the first marker
            found.append((path, "\n".join(lines[hits[0]:hits[0] + 80])))
    return found


def reports(root):
    """Every sanitizer report written under root: [(path, text)]: the
    runtimes' report files in sanitizer/ dirs, and reports in *.log files
    (Dovecot's logs)."""
    found = _log_reports(root)
    for path in sorted(glob.glob(os.path.join(root, "**", "sanitizer", "*"),
                                 recursive=True)):
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        if text.strip():
            found.append((path, text))
    return found


def describe(found, limit=6000):
    """A test failure's text for reports()."""
    out = ["%d sanitizer report(s):" % len(found)]
    for path, text in found:
        out.append("-- %s" % path)
        out.append(text[:limit])
    return "\n".join(out)


def wrap_command(argv, logdir):
    """argv run with the sanitizer environment (for a process a test starts
    itself that loads the project's modules, e.g. doveadm)."""
    if not enabled():
        return argv
    e = environment(logdir)
    return [shutil.which("env") or "/usr/bin/env"] + \
        ["%s=%s" % kv for kv in sorted(e.items())] + list(argv)
