"""Test harness of dovecot-pop3ext: real Dovecot instances, real clients."""

from . import env
from .dovecot import Dovecot, DovecotError, make_plugin_dir
from .ports import free_port, wait_port
from .case import TestCase
from . import mail
