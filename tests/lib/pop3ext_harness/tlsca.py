"""Certificates made with the openssl command line for TLS tests: a CA and
server certificates it signs (with subjectAltName, as libldap and OpenSSL
check it)."""

import os
import subprocess


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class CA:
    """A self-signed CA in dir/<name>-ca.{crt,key}."""

    def __init__(self, dir, name="test"):
        os.makedirs(dir, exist_ok=True)
        self.dir = dir
        self.name = name
        self.cert = os.path.join(dir, name + "-ca.crt")
        self.key = os.path.join(dir, name + "-ca.key")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-days", "2", "-subj", "/CN=%s test CA" % name,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", self.key, "-out", self.cert)
        self._serial = 1

    def server_cert(self, cn, sans=("IP:127.0.0.1", "DNS:localhost"),
                    name=None):
        """Issues a server certificate; returns (cert path, key path)."""
        name = name or cn.replace("/", "_")
        base = os.path.join(self.dir, "%s-%s" % (self.name, name))
        csr = base + ".csr"
        ext = base + ".ext"
        cert, key = base + ".crt", base + ".key"
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
                 "/CN=%s" % cn, "-keyout", key, "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n")
            if sans:
                f.write("subjectAltName=%s\n" % ",".join(sans))
        self._serial += 1
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert,
                 "-CAkey", self.key, "-set_serial", str(self._serial),
                 "-days", "2", "-extfile", ext, "-out", cert)
        os.chmod(key, 0o600)
        return cert, key
