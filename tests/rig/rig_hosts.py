"""Rehearsal hosts: one directory per EC2 instance moto launches, laid out like the AMI.

Layout of ``<hosts>/<instance-id>/`` (the AMI's paths under the host's root):

    etc/neo4j/neo4j.conf    NEO4J_CONF: Bolt on <address>:7687, HTTP off, explicit heap
    var/lib/neo4j/          NEO4J_HOME of the pinned Neo4j (conf -> etc/neo4j, data/, run/)
    var/log/neo4j/          the server's logs
    var/lock/               the cutover scripts' instance lock
    usr/bin/systemctl       the service shim (src/providers/local/neo4j-service.sh)
    usr/bin/neo4j-admin     the real neo4j-admin of that version, for this home
    usr/bin/aws             the real AWS CLI, pointed at the emulator
    agent/                  the stand-in SSM agent's per-command directories

Each host gets its own loopback address 127.0.0.N (N from 2), held for the rig's lifetime
with a lock file under /tmp, so two rigs on one machine never share one. The rig writes
that address into moto's record of the instance, so the private address the EC2 API
reports *is* the host's loopback address: cutover dials it unchanged, and nothing outside
127.0.0.0/8 is ever dialled.

Caveats: the host is a directory on this machine, not a VM; "down" means the stand-in agent
cannot reach it (Neo4j keeps running unless the instance stops or terminates).
"""

import fcntl
import os
import shlex
import socket
import subprocess
import threading
import time

ADDRESS_LOCK_DIR = "/tmp"
BOLT_PORT = 7687


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _q(value):
    return shlex.quote(str(value))


class AddressPool:
    """127.0.0.N addresses, each held with an flock'ed file while this process lives."""

    def __init__(self):
        self._held = {}
        self._lock = threading.Lock()

    def take(self):
        with self._lock:
            for n in range(2, 255):
                address = f"127.0.0.{n}"
                if address in self._held:
                    continue
                handle = open(os.path.join(ADDRESS_LOCK_DIR, f"cutover-rig-{address}.lock"), "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    continue
                if not _port_free(address, BOLT_PORT):
                    handle.close()
                    continue
                self._held[address] = handle
                return address
        raise RuntimeError("no free loopback address 127.0.0.2-254 with port 7687 free")


def _port_free(address, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Host:
    """One rehearsal host. ``up`` is what the stand-in agent sees."""

    def __init__(self, instance_id, root, address):
        self.instance_id = instance_id
        self.root = root
        self.address = address
        self.forced_down = False
        self.instance_running = True
        self.registered_at = None  # when the agent first came online
        self.created_at = time.time()

    @property
    def up(self):
        return self.instance_running and not self.forced_down

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def environment(self):
        """The environment commands run in, like the agent's on the AMI (its PATH finds
        the host's systemctl, neo4j-admin and aws) plus where the AMI's paths are here."""
        env = {
            "PATH": f"{self.path('usr/bin')}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": self.path("root"),
            "LANG": "C.UTF-8",
            "NEO4J_HOME": self.path("var/lib/neo4j"),
            "NEO4J_CONF": self.path("etc/neo4j/neo4j.conf"),
            "NEO4J_DATA": self.path("var/lib/neo4j/data"),
            "CUTOVER_LOCK_FILE": self.path("var/lock/cutover-neo4j.lock"),
        }
        # Keep the machine's python3 (pyenv shims) reachable for the scripts.
        for key in ("PYENV_ROOT",):
            if key in os.environ:
                env[key] = os.environ[key]
        extra = [p for p in os.environ.get("PATH", "").split(":") if p and p not in env["PATH"].split(":")]
        if extra:
            env["PATH"] += ":" + ":".join(extra)
        return env

    def systemctl(self, *args, timeout=90):
        return subprocess.run(
            [self.path("usr/bin/systemctl"), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environment(),
        )


class Hosts:
    """The rig's hosts, created when moto's EC2 first shows an instance."""

    def __init__(self, root, neo4j_install, neo4j_version, aws_cli, endpoint, region_default, heap):
        self.root = root
        self.install = neo4j_install
        self.version = neo4j_version
        self.aws_cli = aws_cli
        self.endpoint = endpoint
        self.region_default = region_default
        self.heap = heap
        self.addresses = AddressPool()
        self._hosts = {}
        self._lock = threading.Lock()
        with open(os.path.join(neo4j_install, "java-home")) as f:
            self.java = os.path.join(f.read().strip(), "bin/java")
        # The server JVM's class and options as the version's bootloader starts it
        # (recorded by scripts/setup-neo4j.sh), which the service script needs.
        with open(os.path.join(neo4j_install, "server-main-class")) as f:
            self.server_main_class = f.read().strip()
        with open(os.path.join(neo4j_install, "server-java-options")) as f:
            self.server_java_options = [o.strip() for o in f if o.strip()]
        here = os.path.dirname(os.path.abspath(__file__))
        with open(os.path.join(here, "../../src/providers/local/neo4j-service.sh")) as f:
            self.service_script = f.read()

    def get(self, instance_id):
        with self._lock:
            return self._hosts.get(instance_id)

    def all(self):
        with self._lock:
            return list(self._hosts.values())

    def reconcile(self, instances, region):
        """Creates hosts for new instances (and gives moto their address); follows
        instance state: a stopped or terminated instance's host goes down and its Neo4j
        is stopped, as the machine would be."""
        for instance in instances:
            host = self.get(instance.id)
            if host is None:
                host = self._create(instance.id, region)
                nic = instance.nics[0]
                nic.private_ip_address = host.address
                nic.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": host.address}]
            running = instance.state == "running"
            if host.instance_running and not running:
                host.instance_running = False
                threading.Thread(target=host.systemctl, args=("stop", "neo4j"), daemon=True).start()
            elif running and not host.instance_running:
                host.instance_running = True

    def _create(self, instance_id, region):
        address = self.addresses.take()
        host = Host(instance_id, os.path.join(self.root, instance_id), address)
        home = host.path("var/lib/neo4j")
        for d in ("etc/neo4j", "var/lib/neo4j/data", "var/lib/neo4j/run", "var/log/neo4j",
                  "var/lock", "usr/bin", "agent", "root"):
            os.makedirs(host.path(d), exist_ok=True)
        if not os.path.lexists(os.path.join(home, "conf")):
            os.symlink("../../../etc/neo4j", os.path.join(home, "conf"))
        if not os.path.lexists(os.path.join(home, "logs")):
            os.symlink("../../log/neo4j", os.path.join(home, "logs"))
        _write(host.path("etc/neo4j/neo4j.conf"), (
            f"# Rehearsal host {instance_id} (Neo4j {self.version}), written by the rig.\n"
            f"server.default_listen_address={address}\n"
            f"server.default_advertised_address={address}\n"
            f"server.bolt.listen_address={address}:{BOLT_PORT}\n"
            f"server.bolt.advertised_address={address}:{BOLT_PORT}\n"
            "server.http.enabled=false\n"
            "server.https.enabled=false\n"
            f"server.memory.heap.initial_size={self.heap}\n"
            f"server.memory.heap.max_size={self.heap}\n"
            "server.memory.pagecache.size=64m\n"
            "server.directories.logs=logs\n"
            "db.shutdown_transaction_end_timeout=2s\n"
            "dbms.usage_report.enabled=false\n"
            # As FAST_BOLT_SHUTDOWN in src/providers/local/neo4j_home.rs: a stop in 0.3 s, not 10 s.
            "internal.dbms.bolt.netty_server_shutdown_quiet_period=0\n"
            "internal.dbms.bolt.netty_server_shutdown_timeout=2\n"
        ))
        _write(host.path("usr/bin/systemctl"), (
            "#!/usr/bin/env bash\n"
            f"# systemctl of rehearsal host {instance_id}: only the neo4j unit.\n"
            f"NEO4J_HOME={_q(home)}\nJAVA={_q(self.java)}\nNEO4J_LIB={_q(os.path.join(self.install, 'lib'))}\n"
            f"HEAP={_q(self.heap)}\nSTOP_GRACE_S=30\nSERVER_MAIN_CLASS={_q(self.server_main_class)}\n"
            f"SERVER_JAVA_OPTIONS=({' '.join(_q(o) for o in self.server_java_options)})\n"
            "export NEO4J_HOME JAVA NEO4J_LIB HEAP STOP_GRACE_S SERVER_MAIN_CLASS\n"
            + self.service_script
        ), 0o755)
        _write(host.path("usr/bin/neo4j-admin"), (
            "#!/usr/bin/env bash\n"
            f"# neo4j-admin {self.version} of rehearsal host {instance_id}.\n"
            "set -euo pipefail\n"
            f"export NEO4J_HOME={_q(home)} NEO4J_CONF={_q(host.path('etc/neo4j'))}\n"
            f"exec {_q(os.path.join(self.install, 'bin/neo4j-admin'))} \"$@\"\n"
        ), 0o755)
        # The instance role's credentials are the emulator's dummies; the endpoint is the rig.
        _write(host.path("usr/bin/aws"), (
            "#!/usr/bin/env bash\n"
            f"# The AWS CLI of rehearsal host {instance_id}, pointed at the emulator.\n"
            "set -euo pipefail\n"
            f"export AWS_ENDPOINT_URL={_q(self.endpoint)} AWS_REGION={_q(region)} AWS_DEFAULT_REGION={_q(region)}\n"
            "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing\n"
            "export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null\n"
            f"exec {_q(self.aws_cli)} \"$@\"\n"
        ), 0o755)
        with self._lock:
            self._hosts[instance_id] = host
        return host

    def stop_all(self):
        """Stops every host's Neo4j (the rig is going away)."""
        threads = [threading.Thread(target=h.systemctl, args=("stop", "neo4j")) for h in self.all()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
