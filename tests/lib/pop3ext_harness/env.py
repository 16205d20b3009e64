"""Where the source tree, the build tree and Dovecot are. tests/run.py sets
POP3EXT_SRCDIR and POP3EXT_BUILDDIR; run by hand, the defaults are the
source tree and its build/ folder (what scripts/test.sh uses)."""

import glob
import os

_here = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("POP3EXT_SRCDIR",
                        os.path.abspath(os.path.join(_here, "..", "..", "..")))
BUILDDIR = os.environ.get("POP3EXT_BUILDDIR", os.path.join(SRCDIR, "build"))
DOVECOT_MODULEDIR = "/usr/lib/dovecot/modules"
DOVECOT_LIBEXECDIR = "/usr/lib/dovecot"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def built(path):
    """A file of the build tree; fails clearly when it was not built."""
    p = os.path.join(BUILDDIR, path)
    if not os.path.exists(p):
        raise FileNotFoundError("%s is not built (run make in %s)"
                                % (p, BUILDDIR))
    return p


def built_mail_plugins():
    """The project's mail plugins (lib<NN>_<name>_plugin.so) as built."""
    found = []
    for so in glob.glob(os.path.join(BUILDDIR, "**", ".libs", "lib*.so"),
                        recursive=True):
        base = os.path.basename(so)
        if base.endswith("_plugin.so") and "doveadm" not in base:
            found.append(so)
    if not found:
        raise FileNotFoundError("no mail plugins built under %s" % BUILDDIR)
    return sorted(found)


def shipped_conf():
    return os.path.join(SRCDIR, "dovecot-pop3ext.conf")


def all_built_modules():
    """Every shared object the build produced (mail, auth, doveadm)."""
    return sorted(glob.glob(os.path.join(BUILDDIR, "**", ".libs", "*.so"),
                            recursive=True))


def doveadm_overlay():
    """module_overlays for an instance whose doveadm has the pop3ext
    commands."""
    return {"doveadm": [built("plugin/doveadm/.libs/"
                              "lib20_doveadm_pop3ext_plugin.so")]}
